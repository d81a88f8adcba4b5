"""PostgresKeywordRetriever on a real PostgreSQL 15 on loopback (tests/postgres_support.py
starts it): full-text search with the `norwegian` configuration, OR queries, upserts,
and errors that say what to do."""

from __future__ import annotations

import dataclasses
import socket
import uuid

import postgres_support as support
import pytest

from borealis_local.corpus import load_corpus
from borealis_local.errors import InvalidRequestError, ServerUnavailableError
from borealis_local.retrieval.base import Retriever
from borealis_local.retrieval.postgres import PostgresKeywordRetriever

postgres_server = support.postgres_server
postgres_dsn = support.postgres_dsn


def fresh_table() -> str:
    return f"docs_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def retriever(postgres_dsn):
    with PostgresKeywordRetriever.from_documents(
        load_corpus(), postgres_dsn, table=fresh_table()
    ) as retriever:
        yield retriever


def ids(hits) -> list[str]:
    return [hit.document.id for hit in hits]


# --- searching the example corpus -------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Kor djup er Sognefjorden?", "fjordar"),
        ("Når startet Hurtigruten, og hvem startet den?", "hurtigruten"),
        ("Hvorfor ble dugnad kåret til nasjonalord?", "dugnad"),
        ("Kor mange stavkyrkjer står att i Noreg?", "stavkyrkjer"),
        ("Hvor ble det første samiske landsmøtet holdt?", "samefolkets-dag"),
        ("Hvem fant opp brunosten i Gudbrandsdalen?", "brunost"),  # brunosten -> brunost
    ],
)
def test_a_question_finds_its_document(retriever, question, expected):
    hits = retriever.search(question, k=3)
    assert expected in ids(hits), [(hit.document.id, hit.score) for hit in hits]
    assert len(set(ids(hits))) == len(hits) <= 3
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True) and all(score > 0 for score in scores)


def test_hits_carry_the_whole_document(retriever):
    corpus = {doc.id: doc for doc in load_corpus()}
    for hit in retriever.search("fjord nynorsk bokmål", k=12):
        assert hit.document == corpus[hit.document.id]


def test_a_word_no_document_has_does_not_hide_the_others(retriever, postgres_dsn):
    question = "Kor djup er Sognefjorden, og kven bygde kvantedatamaskinen?"
    assert retriever.search("kvantedatamaskinen") == []  # no document has that word
    assert ids(retriever.search(question, k=3))[0] == "fjordar"
    # PostgreSQL's own plainto_tsquery needs every word, so it finds nothing here.
    import psycopg

    with psycopg.connect(postgres_dsn) as connection:
        row = connection.execute(
            psycopg.sql.SQL(
                "SELECT count(*) FROM {} WHERE search @@ plainto_tsquery('norwegian', %s)"
            ).format(psycopg.sql.Identifier(retriever.table)),
            (question,),
        ).fetchone()
    assert row[0] == 0


def test_only_documents_that_share_a_word_come_back(retriever):
    hits = retriever.search("Sognefjorden", k=12)
    assert 1 <= len(hits) < 12
    assert all("sognefjord" in hit.document.text.lower() for hit in hits)
    assert retriever.search("og det er ikke", k=5) == []  # stopwords only: no lexemes


def test_it_is_a_retriever_the_eval_command_can_use(postgres_dsn):
    def top_id(retriever: Retriever, question: str) -> str:
        return retriever.search(question, k=1)[0].document.id

    retriever = PostgresKeywordRetriever.from_documents(
        load_corpus(), postgres_dsn, table=fresh_table()
    )
    with retriever:
        assert top_id(retriever, "Kor djup er Sognefjorden?") == "fjordar"


# --- writing ----------------------------------------------------------------------------


def test_adding_the_same_documents_again_changes_nothing(postgres_dsn):
    corpus = load_corpus()
    with PostgresKeywordRetriever.from_documents(corpus, postgres_dsn, table=fresh_table()) as r:
        before = [(hit.document.id, hit.score) for hit in r.search("fjord og nynorsk", k=12)]
        r.add_documents(corpus)
        assert len(r) == 12
        assert [
            (hit.document.id, hit.score) for hit in r.search("fjord og nynorsk", k=12)
        ] == before


def test_a_document_added_again_with_new_text_is_replaced(postgres_dsn):
    corpus = load_corpus()
    with PostgresKeywordRetriever.from_documents(corpus, postgres_dsn, table=fresh_table()) as r:
        changed = dataclasses.replace(corpus[0], text="Reinsdyr beiter på vidda om vinteren.")
        r.add_documents([changed])
        assert len(r) == 12
        assert r.search("reinsdyra på vidda", k=3)[0].document == changed
        assert changed.id not in ids(r.search("pliktavlevering", k=12))


def test_replace_leaves_only_the_new_documents(postgres_dsn):
    corpus, table = load_corpus(), fresh_table()
    PostgresKeywordRetriever.from_documents(corpus, postgres_dsn, table=table).close()
    kept = corpus[:3]
    with PostgresKeywordRetriever.from_documents(
        kept, postgres_dsn, table=table, replace=True
    ) as r:
        assert len(r) == 3
        hits = r.search("fjord nynorsk bokmål by Nasjonalbiblioteket", k=12)
        assert hits and {hit.document.id for hit in hits} <= {doc.id for doc in kept}


def test_a_table_in_a_schema_of_its_own(postgres_dsn):
    import psycopg

    schema = f"library_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(
            psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(schema))
        )
    table = f"{schema}.Documents"  # the case is kept: each part is quoted
    with PostgresKeywordRetriever.from_documents(load_corpus(), postgres_dsn, table=table) as r:
        assert ids(r.search("Kor djup er Sognefjorden?", k=1)) == ["fjordar"]
    with PostgresKeywordRetriever(postgres_dsn, table=table) as reopened:
        assert len(reopened) == 12


# --- input that must do no harm -----------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "fjord'; DROP TABLE {table}; --",
        "fjord') OR 1=1 --",
        "fjord & !nynorsk | (bokmål <-> :*",
        "%(query)s %s {table} \\ ' \"",
        "Robert'); DELETE FROM pg_ts_config; --",
    ],
)
def test_sql_shaped_queries_are_only_words(retriever, query):
    hits = retriever.search(query.format(table=retriever.table), k=12)
    assert all(hit.score > 0 for hit in hits)
    assert len(retriever) == 12  # the table is still there, whole
    assert ids(retriever.search("Kor djup er Sognefjorden?", k=1)) == ["fjordar"]


def test_a_table_name_with_sql_in_it_is_only_a_name(postgres_dsn):
    table = 'docs"; DROP TABLE pg_class; --'
    with PostgresKeywordRetriever.from_documents(load_corpus(), postgres_dsn, table=table) as r:
        assert len(r) == 12
        assert ids(r.search("Kor djup er Sognefjorden?", k=1)) == ["fjordar"]


# --- errors -------------------------------------------------------------------------------


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_server_that_is_down_is_a_clear_error(closed_port):
    dsn = f"postgresql://postgres@127.0.0.1:{closed_port}/postgres"
    with pytest.raises(ServerUnavailableError, match=f"127.0.0.1:{closed_port}") as error:
        PostgresKeywordRetriever(dsn)
    assert "start a server" in str(error.value)


def test_a_server_that_never_answers_times_out():
    # A socket that accepts connections and says nothing: without connect_timeout,
    # the client would wait for the server's greeting forever.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with pytest.raises(ServerUnavailableError, match=f"127.0.0.1:{port}"):
            PostgresKeywordRetriever(dsn, connect_timeout=2)


def test_a_server_that_stops_is_a_clear_error_then_a_reconnect(postgres_server):
    server = support.PostgresServer().start()  # one of its own, to stop
    try:
        retriever = PostgresKeywordRetriever.from_documents(load_corpus(), server.dsn)
        assert retriever.search("fjord", k=1)
    finally:
        server.stop()
    with pytest.raises(ServerUnavailableError, match="Lost the connection"):
        retriever.search("fjord")
    with pytest.raises(ServerUnavailableError, match="not reachable"):
        retriever.search("fjord")  # the next call tries a new connection
    retriever.close()


def test_a_missing_table_says_how_to_make_it(postgres_dsn):
    retriever = PostgresKeywordRetriever(postgres_dsn, table="no_such_table")
    with pytest.raises(InvalidRequestError, match="no table 'no_such_table'.*from_documents"):
        retriever.search("fjord")
    with pytest.raises(InvalidRequestError, match="no table"):
        len(retriever)


def test_an_unknown_configuration_lists_the_known_ones(postgres_dsn):
    with pytest.raises(InvalidRequestError, match="no text search configuration 'klingon'") as e:
        PostgresKeywordRetriever(postgres_dsn, config="klingon")
    assert "norwegian" in str(e.value)


def test_a_table_built_with_another_configuration_is_refused(retriever, postgres_dsn):
    english = PostgresKeywordRetriever(postgres_dsn, table=retriever.table, config="english")
    with pytest.raises(InvalidRequestError, match="built with the 'english' configuration"):
        english.search("fjord")


def test_a_table_that_is_not_an_index_is_refused(postgres_dsn):
    import psycopg

    table = fresh_table()
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(
            psycopg.sql.SQL("CREATE TABLE {} (x int)").format(psycopg.sql.Identifier(table))
        )
    with pytest.raises(InvalidRequestError, match="is not a keyword index"):
        PostgresKeywordRetriever(postgres_dsn, table=table).add_documents(load_corpus())
    with pytest.raises(InvalidRequestError, match="is not a keyword index"):
        PostgresKeywordRetriever.from_documents(
            load_corpus(), postgres_dsn, table=table, replace=True
        )
    with psycopg.connect(postgres_dsn) as connection:  # still there, untouched
        connection.execute(
            psycopg.sql.SQL("SELECT x FROM {}").format(psycopg.sql.Identifier(table))
        )


@pytest.mark.parametrize(("query", "k"), [("", 3), ("   ", 3), ("fjord", 0), ("fjord", True)])
def test_bad_arguments_are_clear_errors(retriever, query, k):
    with pytest.raises(InvalidRequestError):
        retriever.search(query, k=k)


def test_documents_are_checked_before_anything_is_written(postgres_dsn):
    retriever = PostgresKeywordRetriever(postgres_dsn, table=fresh_table())
    doc = load_corpus()[0]
    with pytest.raises(InvalidRequestError, match="used twice"):
        retriever.add_documents([doc, doc])
    with pytest.raises(InvalidRequestError, match="no table"):
        len(retriever)
