"""The offline assets are installed by `make test` and readable."""

from transferlm.cli import main
from transferlm.data import assets


def test_asset_paths_exist():
    assert (assets.path("minilm") / "config.json").is_file()
    assert (assets.path("minilm") / "vocab.txt").is_file()
    assert assets.path("smollm2").is_file()
    assert assets.path("wnut16").is_file()


def test_ptb_splits_have_the_published_sizes():
    # Mikolov's PTB: 887,521 / 70,390 / 78,669 word tokens (929,589 / 73,760 / 82,430 with one <eos> a line).
    counts = {s: len(assets.ptb_text(s).split()) for s in ("train", "valid", "test")}
    assert counts == {"train": 887521, "valid": 70390, "test": 78669}
    assert len([ln for ln in assets.ptb_text("train").splitlines() if ln.strip()]) == 42068


def test_bbc_news_has_five_topics_and_2225_articles():
    data = assets.bbc_news()
    assert len(data) == 2225
    labels = {lab for _, lab in data}
    assert len(labels) == 5
    assert all(text.strip() for text, _ in data)


def test_wnut16_shape():
    sents = assets.wnut16()
    assert len(sents) == 2394
    assert sum(len(t) for t, _ in sents) == 46469
    assert all(len(t) == len(g) for t, g in sents)
    assert all(tag == "O" or tag[:2] in ("B-", "I-") for _, g in sents for tag in g)


def test_cli_assets_path(capsys):
    assert main(["assets", "path", "minilm"]) == 0
    assert capsys.readouterr().out.strip().endswith("model")


def test_bbc_news_is_decoded_as_utf8():
    texts = [t for t, _ in assets.bbc_news()]
    assert sum("£" in t for t in texts) > 500  # pounds sterling, as written
    assert not any("Â£" in t for t in texts)  # UTF-8 read as latin-1 would give this
