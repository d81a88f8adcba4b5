"""Documents as JSON Lines, one object per line: {"id", "text", "title"?, "language"?}.

The format `borealis eval retrieval` reads and saved indexes keep their documents in.
A missing language is detected from the text (nb, nn or en).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from borealis_local.corpus import Document
from borealis_local.errors import InvalidRequestError
from borealis_local.prompts import LANGUAGES, detect_language


def json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a clear error naming the line
    where a line is not a JSON object."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as error:
        raise InvalidRequestError(f"Cannot read {path}: {error.strerror or error}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise InvalidRequestError(
                    f"{path}:{number}: not JSON ({error.msg}); each line must be one JSON object"
                ) from None
            if not isinstance(value, dict):
                raise InvalidRequestError(f"{path}:{number}: each line must be a JSON object")
            yield number, value


def read_documents(path: Path) -> list[Document]:
    documents = [_document(value, path, number) for number, value in json_lines(path)]
    if not documents:
        raise InvalidRequestError(f"{path} holds no documents (one JSON object per line)")
    return documents


def _document(value: dict, path: Path, number: int) -> Document:
    where = f"{path}:{number}"
    for key in ("id", "text"):
        if not isinstance(value.get(key), str) or not value[key].strip():
            raise InvalidRequestError(f'{where}: a document needs "{key}" as a non-empty string')
    title = value.get("title") or ""
    language = value.get("language") or detect_language(value["text"])
    if not isinstance(title, str):
        raise InvalidRequestError(f'{where}: "title" must be a string')
    if language not in LANGUAGES:
        raise InvalidRequestError(
            f'{where}: "language" is {language!r}; use one of {", ".join(LANGUAGES)}'
        )
    return Document(id=value["id"], title=title, language=language, text=value["text"])


def write_documents(documents: Iterable[Document], path: Path) -> None:
    with Path(path).open("w", encoding="utf-8") as out:
        for doc in documents:
            record = {"id": doc.id, "title": doc.title, "language": doc.language, "text": doc.text}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
