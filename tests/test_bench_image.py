"""Images in `borealis bench` and `borealis recommend`.

Real parts: llama.cpp with libmtmd on the stand-in Gemma 3 270M and a synthetic Gemma 3
projector (`synth.synthesize_projector`: the real architecture and encode path, random
weights, here reduced to 1 of the 27 encoder blocks so an encode takes seconds, not the
full tower's minute on these CPUs); its embeddings are noise, so the tests assert
tokens, timings and memory, never what the model answers. The projector formula is
checked against the files the synthesiser writes and against what clip.cpp logs when
it loads the full-depth one.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json

import pytest

from borealis_local.bench import cli, estimate, image_view, report, synth
from borealis_local.bench import recommend as rec
from borealis_local.bench.measure import Config, Target, Test
from borealis_local.bench.row import ResultRow
from borealis_local.catalog import GEMMA3_VISION, SHAPES
from borealis_local.errors import InvalidRequestError

GiB, MiB = 2**30, 2**20
STAND_IN_WIDTH = SHAPES["270m"].hidden  # 640


def bench(argv: list[str], capsys) -> tuple[int, str, str]:
    """`borealis bench ARGV` in this process; (exit status, stdout, stderr)."""
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def parsed(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="borealis")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(cli.with_default_subcommand(["bench", *argv]))


@pytest.fixture(scope="module")
def projector_1_block(tmp_path_factory):
    """A synthetic projector for the stand-in's width with 1 encoder block."""
    folder = tmp_path_factory.mktemp("mmproj")
    return synth.synthesize_projector(folder, STAND_IN_WIDTH, layers=1)


# -- the image test, measured ---------------------------------------------------------


@pytest.fixture(scope="module")
def image_row(gemma_gguf, llama_cpp, projector_1_block):
    """`borealis bench STAND-IN --image synthetic --mmproj 1-BLOCK.gguf` with only the
    image test, one warm-up and 2 reps, as JSON."""
    argv = [str(gemma_gguf), "--image", "synthetic", "--mmproj", str(projector_1_block),
            "-p", "0", "-n", "0", "--chat", "0", "-r", "2", "-t", "2", "-o", "json"]
    with pytest.MonkeyPatch.context() as patch:
        printed = io.StringIO()
        patch.setattr("sys.stdout", printed)
        assert cli.main(argv) == 0
    rows = json.loads(printed.getvalue())
    assert [row["test"] for row in rows] == ["image"]
    return rows[0]


@pytest.mark.slow
def test_the_image_test_encodes_one_image_of_256_tokens(image_row):
    assert image_row["image"] == "synthetic"
    assert image_row["image_tokens"] == GEMMA3_VISION.tokens_per_image == 256
    samples = image_row["samples_image_encode_ms"]
    assert len(samples) == 2 and all(ms > 0 for ms in samples)
    assert image_row["image_encode_ms"] == pytest.approx(sorted(samples)[0] / 2
                                                         + sorted(samples)[1] / 2)
    # The prompt counts the image's tokens; its evaluation includes the encoding.
    assert image_row["prompt_tokens"] > 256
    for ns, encode_ms in zip(image_row["samples_ns"], samples, strict=True):
        assert ns / 1e6 > encode_ms
    assert image_row["samples_ts"] == pytest.approx(
        [1e9 * image_row["prompt_tokens"] / ns for ns in image_row["samples_ns"]], rel=1e-6)
    assert image_row["avg_ts"] == image_row["prompt_ts"]
    assert image_row["ttft_ms"] > image_row["image_encode_ms"]
    assert all(0 < n <= 4 for n in image_row["completion_tokens"])


@pytest.mark.slow
def test_the_projectors_load_and_memory_come_from_llama_cpps_log(image_row, projector_1_block):
    assert image_row["mmproj"] == str(projector_1_block)
    assert image_row["mmproj_load_ms"] > 0
    file_bytes = projector_1_block.stat().st_size
    assert image_row["mmproj_file_bytes"] == file_bytes
    # clip.cpp logs the tensors' size in MiB with two decimals.
    assert abs(image_row["mmproj_weight_bytes"] - (file_bytes - 64 * 1024)) < 64 * 1024
    buffers = image_row["buffers"]
    assert image_row["mmproj_compute_bytes"] == buffers["mmproj CPU compute"] > 50 * MiB
    assert "CPU compute" in buffers and "CPU KV" in buffers  # the text model's, apart
    # Host peak: the model, the projector's weights and its compute buffer, touched.
    assert image_row["peak_host_bytes"] > (image_row["model_size"]
                                           + image_row["mmproj_weight_bytes"])


@pytest.mark.slow
def test_a_synthetic_projector_is_labelled_with_its_depth(image_row):
    label = image_row["mmproj_label"]
    assert "synthetic projector: random weights" in label
    assert "REDUCED to 1 of 27 encoder blocks" in label


@pytest.mark.slow
def test_the_image_row_round_trips_and_has_its_columns(image_row):
    row = ResultRow.from_dict(image_row)
    assert row.to_dict() == image_row and not row.extra  # every key is a field
    assert row.identity().key() == image_row["config_key"]
    assert row.identity().mmproj == image_row["mmproj"]
    table = report.to_markdown([image_row])
    for column in ("img tokens", "encode ms", "mmproj mem", "mmproj load ms"):
        assert column in table
    assert "| image * |" in table and f"* {image_row['mmproj_label']}" in table
    header = report.to_csv([image_row]).splitlines()[0].split(",")
    assert {"image_tokens", "image_encode_ms", "mmproj_label", "mmproj_compute_bytes"} <= set(
        header)
    # Rows without an image keep the table they had.
    assert "encode ms" not in report.to_markdown([row.updated(image_encode_ms=None)])


# -- planning the test ------------------------------------------------------------------


def test_the_stand_in_gets_a_synthetic_projector_and_others_must_name_one(gemma_gguf,
                                                                         monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(gemma_gguf.parent.parent))  # the stand-in's
    sweep = cli.sweep_from_args(parsed([str(gemma_gguf), "--image", "synthetic"]))
    assert sweep.mmproj == image_view.SYNTHETIC and sweep.mmproj_layers is None
    assert sweep.tests()[-1] == Test(n_gen=image_view.IMAGE_ANSWER_TOKENS, image=True)
    given = cli.sweep_from_args(parsed([str(gemma_gguf), "--image", "a.png", "--mmproj",
                                        "m.gguf"]))
    assert given.mmproj == "m.gguf"
    monkeypatch.setenv("XDG_CACHE_HOME", "/nowhere")  # the same file is just a GGUF now
    other = cli.sweep_from_args(parsed([str(gemma_gguf), "--image", "synthetic"]))
    assert other.mmproj is None


def test_a_synthetic_projector_is_written_once_for_the_models_width(gemma_gguf, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    target = Target(str(gemma_gguf), "llama.cpp", path=str(gemma_gguf))
    said: list[str] = []
    first = image_view.prepare(target, "synthetic", "synthetic", layers=1, progress=said.append)
    again = image_view.prepare(target, "synthetic", "synthetic", layers=1, progress=said.append)
    assert first == again
    assert first["mmproj"] == str(tmp_path / "borealis-local"
                                  / synth.synthetic_projector_filename(STAND_IN_WIDTH, 1))
    assert sum("once" in text for text in said) == 1
    assert "REDUCED to 1 of 27" in first["mmproj_label"]
    assert not [p for p in (tmp_path / "borealis-local").iterdir() if p.is_dir()]  # no scratch


@pytest.mark.parametrize(("argv", "message"), [
    (["STAND-IN", "--image", "no-such-picture.png", "--mmproj", "m.gguf"],
     "--image: no such image file: no-such-picture.png"),
    (["borealis-1b:Q4_K_M", "--image", "synthetic"],
     "--image: borealis-1b is a text-only model"),
    (["./borealis-open-270m-Q8_0.gguf", "--image", "synthetic"], "is a text-only model"),
    (["STAND-IN", "--mmproj", "m.gguf"], "--mmproj and --mmproj-layers are for the image test"),
    (["openai:borealis-4b@http://127.0.0.1:9/v1", "--image", "synthetic"],
     "--image measures llama.cpp in-process"),
])
def test_image_input_errors_say_what_to_do(argv, message, capsys, gemma_gguf):
    argv = [str(gemma_gguf) if word == "STAND-IN" else word for word in argv]
    status, _, err = bench(argv, capsys)
    assert status == 1
    assert message in err


def test_a_file_that_is_not_an_image_is_a_clear_error(tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(InvalidRequestError, match="--image: .*notes.png is not an image "
                       "Pillow can decode.*use a PNG or JPEG file"):
        image_view.bench_image(str(tmp_path / "notes.png"))


def _alone(gguf, folder):
    """`gguf` in a folder of its own (the stand-in's cache folder holds synthetic
    projectors that fit it)."""
    folder.mkdir(exist_ok=True)
    path = folder / "model.gguf"
    path.symlink_to(gguf)
    return Target(str(path), "llama.cpp", path=str(path))


def test_a_model_without_a_projector_must_be_given_one(gemma_gguf, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "no-hub"))
    target = _alone(gemma_gguf, tmp_path / "models")
    with pytest.raises(InvalidRequestError, match="none is beside it or in the hub cache: "
                       "`borealis pull SIZE` fetches it.*give --mmproj FILE.*--mmproj synthetic"):
        image_view.prepare(target, "synthetic", None)
    with pytest.raises(InvalidRequestError, match="--mmproj-layers shapes a synthetic"):
        image_view.prepare(target, "synthetic", str(gemma_gguf), layers=1)


def test_the_models_own_projector_is_found_beside_it(gemma_gguf, tmp_path, monkeypatch,
                                                     projector_1_block):
    """As `borealis pull` leaves them: the projector next to the weights."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "no-hub"))
    from hub_support import make_projector

    target = _alone(gemma_gguf, tmp_path / "models")
    # A synthetic projector is never taken by itself (it is random weights)...
    (tmp_path / "models" / "mmproj-synthetic-F16.gguf").symlink_to(projector_1_block)
    with pytest.raises(InvalidRequestError, match="none is beside it"):
        image_view.prepare(target, "synthetic", None)
    # ...a projector for the model's width is.
    own = make_projector(tmp_path / "models" / "mmproj-model-F16.gguf", projection_dim=640)
    found = image_view.prepare(target, "synthetic", None)
    assert found["mmproj"] == str(own)
    assert found["mmproj_label"] is None  # not synthetic: nothing to say


def test_image_without_a_model_takes_a_local_4b_with_its_projector_else_the_stand_in(
    gemma_gguf, tmp_path, monkeypatch, capsys
):
    """Nothing is downloaded (the first run's 270m sees no images)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(gemma_gguf.parent.parent))  # the stand-in's
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "no-hub"))
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("BOREALIS_MODELS", str(models))
    sweep = cli.sweep_from_args(parsed(["--image", "synthetic"]))
    assert sweep.models == [str(gemma_gguf)]
    assert sweep.labels == {str(gemma_gguf): cli.STAND_IN_LABEL}
    assert sweep.mmproj == image_view.SYNTHETIC
    assert "with a synthetic projector" in capsys.readouterr().err
    # A 4b without its projector cannot take the image: still the stand-in.
    (models / "borealis-4b-Q4_K_M.gguf").symlink_to(gemma_gguf)  # only looked for here
    assert cli.sweep_from_args(parsed(["--image", "synthetic"])).models == [str(gemma_gguf)]
    from hub_support import make_projector

    make_projector(models / "mmproj-borealis-4b-F16.gguf", projection_dim=SHAPES["4b"].hidden)
    sweep = cli.sweep_from_args(parsed(["--image", "synthetic"]))
    assert sweep.models == ["borealis-4b:Q4_K_M"] and not sweep.labels
    assert sweep.mmproj is None  # prepare finds the 4b's own


def test_the_synthetic_picture_is_gemma_3s_input_size():
    picture = image_view.synthetic_image()
    assert (picture.width, picture.height, picture.mime) == (896, 896, "image/png")
    assert picture.digest == image_view.synthetic_image().digest  # the same every time


def test_an_image_test_runs_in_process_only():
    server = Target("openai:m@http://x/v1", "openai", server_model="m", base_url="http://x/v1")
    image = (Test(n_gen=4, image=True),)
    with pytest.raises(InvalidRequestError, match="in-process"):
        Config(server, image, image="synthetic", mmproj="m.gguf")
    local = Target("m.gguf", "llama.cpp", path="m.gguf")
    with pytest.raises(InvalidRequestError, match="needs an image and a projector"):
        Config(local, image)
    with pytest.raises(InvalidRequestError, match="not both"):
        Test(n_gen=4, chat=True, image=True)
    assert Config(local, image, image="synthetic", mmproj="m.gguf").key(image[0])


def test_an_image_rows_point_names_its_picture_and_projector():
    """A resumed run measures another picture or projector again; text rows' points
    are what they were."""
    local = Target("m.gguf", "llama.cpp", path="m.gguf")
    image, text = Test(n_gen=4, image=True), Test(n_prompt=512)
    keys = {Config(local, (image,), image=picture, mmproj=projector).key(image)
            for picture in ("synthetic", "photo.png") for projector in ("a.gguf", "b.gguf")}
    assert len(keys) == 4
    both = Config(local, (text, image), image="synthetic", mmproj="a.gguf")
    assert both.key(text) == Config(local, (text,)).key(text)
    assert "image" not in both.identity(text).to_dict()
    assert both.identity(image).to_dict()["mmproj"] == "a.gguf"


# -- the projector's memory in the estimate --------------------------------------------


def test_the_weight_formula_is_the_synthetic_projectors_tensor_data(projector_1_block):
    """The closed formula against the tensors the synthesiser writes: the full 27-block
    tower at the stand-in's width (846.8 MB, what clip.cpp logged as 807.57 MiB), and the
    1-block file on disk (its size less a header of a few KB)."""
    full = estimate.projector_weight_bytes(GEMMA3_VISION, STAND_IN_WIDTH)
    assert full == synth.projector_bytes(STAND_IN_WIDTH) == 846_802_368
    one = dataclasses.replace(GEMMA3_VISION, layers=1)
    written = projector_1_block.stat().st_size
    assert 0 < written - estimate.projector_weight_bytes(one, STAND_IN_WIDTH) < 64 * 1024
    # The 4b's F16 projector: 420 M parameters, 0.85 GB (the GGUF repos' mmproj-…-f16).
    assert estimate.projector_weight_bytes(GEMMA3_VISION, SHAPES["4b"].hidden) == (
        pytest.approx(0.851e9, rel=0.002))
    q8 = estimate.projector_weight_bytes(GEMMA3_VISION, SHAPES["4b"].hidden, "Q8_0")
    assert 0.5 < q8 / 0.851e9 < 0.6


@pytest.mark.slow
def test_the_full_projector_file_and_clip_cpps_buffers_match_the_estimate(
    gemma_gguf, llama_cpp
):
    """A full-depth synthetic projector: its file is the formula's bytes plus a header,
    and clip.cpp's logged weights and compute buffer (flash attention on and off) are the
    estimate's, to the MiB."""
    from borealis_local.bench.llama_bench import buffer_sizes, logged_projector_weights
    from borealis_local.runtime.llama_cpp import LlamaCppBackend

    path = image_view.synthetic_projector(STAND_IN_WIDTH)  # written once, in the cache
    weights = estimate.projector_weight_bytes(GEMMA3_VISION, STAND_IN_WIDTH)
    assert 0 < path.stat().st_size - weights < 64 * 1024
    for flash_attn in (True, False):
        backend = LlamaCppBackend(gemma_gguf, mmproj=path, n_ctx=512, n_threads=2,
                                  flash_attn="on" if flash_attn else "off")
        try:
            log = backend.load_projector().load_log
        finally:
            backend.close()
        assert abs(logged_projector_weights(log) - weights) < 0.01 * MiB
        expected = estimate.projector_compute_bytes(GEMMA3_VISION, flash_attn=flash_attn)
        assert abs(buffer_sizes(log)["CPU compute"] - expected) < 0.01 * MiB


def test_images_add_the_projector_to_4b_and_nothing_to_1b():
    text = estimate.estimate("4b", "Q4_K_M", 8192)
    images = estimate.estimate("4b", "Q4_K_M", 8192, images=True)
    projector = estimate.projector_weight_bytes(GEMMA3_VISION, SHAPES["4b"].hidden)
    compute = estimate.projector_compute_bytes(GEMMA3_VISION, flash_attn=True)
    assert (images.projector, images.projector_compute) == (projector, compute)
    assert images.total - text.total == projector + compute + estimate.IMAGE_SCRATCH_BYTES
    assert (text.projector, text.projector_compute) == (0, 0)
    assert estimate.estimate("1b", "Q4_K_M", 8192, images=True) == estimate.estimate(
        "1b", "Q4_K_M", 8192)
    # On a GPU the projector goes where the layers go; Ollama plans without flash
    # attention, so K·Q of 4096 patches and 16 heads: 1 GiB more.
    gpu = estimate.estimate("4b", "Q4_K_M", 8192, device="gpu", images=True)
    assert gpu.device_bytes == (gpu.weights + gpu.kv_cache + gpu.compute + projector + compute)
    ollama = estimate.estimate("4b", "Q4_K_M", 8192, runtime="ollama", images=True)
    assert ollama.projector_compute - compute > 1 * GiB - 30 * MiB


def test_recommend_with_images_makes_room_for_the_projector():
    machine = rec.Machine(ram=16 * GiB)
    text, images = rec.recommend(machine), rec.recommend(machine, images=True)
    assert images.images and not text.images
    for (size, quant), fit in images.fits.items():
        if fit is None:
            continue
        assert (fit.estimate.projector > 0) == (size in ("4b", "12b", "27b"))
        plain = text.fits[size, quant]
        assert plain is not None and plain.n_ctx >= fit.n_ctx
    assert rec.fast_pick(images, 1e15) == images.pick


def test_recommend_images_flag(capsys):
    from borealis_local.bench.advice_cli import register

    parser = argparse.ArgumentParser(prog="borealis")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["recommend", "--ram", "16", "--images", "--json"])
    assert args.func(args) == 0
    advice = json.loads(capsys.readouterr().out)
    assert advice["images"] is True
    sizes = {row["size"]: row["estimate"]["projector"] for row in advice["fits"] if row["fits"]}
    assert sizes["4b"] > 0.8e9 and sizes["1b"] == 0
    args = parser.parse_args(["recommend", "--ram", "16"])
    assert args.func(args) == 0
    assert "`borealis recommend --images`" in capsys.readouterr().out
