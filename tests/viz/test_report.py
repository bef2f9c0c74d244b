"""The pipeline report: self-contained HTML, Markdown with real files, the right numbers, and
"not run" for what has not run."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.checkpoints import save_tiny_checkpoint

from orl.discover.store import FLAG_FALLBACK, FLAG_SKIPPED, CorrespondenceStore, write_store
from orl.viz.pairs import best_pairs
from orl.viz.report import loss_series, report_blocks, training_blocks, write_report
from orl.viz.report_document import Figure, md_escape
from orl.viz.report_plots import PALETTE, Series, line_plot, nice_ticks

FINGERPRINT = "fp-3f9c0e7d1a2b"
RESULTS = {
    "protocol": "VOC07 linear SVM on frozen layer-4 features (mAP)",
    "columns": ["mAP", "top1"],
    "rows": [
        {"name": "random init", "metrics": {"mAP": 0.3125, "top1": 12.5}},
        {"name": "BYOL", "metrics": {"mAP": 0.5512, "top1": 40.25}},
        {"name": "ORL", "metrics": {"mAP": 0.6021, "top1": 44.75}},
    ],
}
VOID = {"meta", "img", "br", "hr", "link", "input", "source", "wbr", "col", "area", "base"}


def save_checkpoint(path: Path, seed: int) -> None:
    save_tiny_checkpoint(path, seed, data_fingerprint=FINGERPRINT)


def write_run(run: Path, orl: bool, seed: int | None) -> None:
    """An `orl pretrain` folder: config, 6 metric lines (+ a torn one), summary, checkpoint."""
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(f"method: {'orl' if orl else 'byol'}\narch: resnet18\n")
    lines = []
    for step in range(1, 7):
        rec = {"step": step, "epoch": 0, "loss": 4.0 - 0.5 * step, "loss_image": 2.0 - 0.2 * step}
        if orl:
            rec |= {"loss_intra": 1.0 - 0.1 * step, "loss_inter": 1.0 - 0.05 * step}
        rec |= {"lr": 0.01 * step, "tau": 0.99, "images_per_s": 100.0}
        lines.append(json.dumps(rec))
    (run / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 7, "lo')
    summary = {"final_loss": 1.0, "wall_time_s": 12.5 if not orl else 33.25, "images_seen": 48}
    summary |= {"skipped": 0, "steps": 6, "images_per_s": 87.5, "data_wait_fraction": 0.1}
    (run / "summary.json").write_text(json.dumps(summary))
    if seed is not None:
        save_checkpoint(run / "checkpoints" / "last.pt", seed)


def write_photos(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        pixels = np.full((48, 64, 3), rng.integers(0, 256, 3), np.uint8)
        pixels[10:30, 20:44] = 255 - pixels[0, 0]  # an "object"
        paths.append(str(folder / f"photo_{i}.jpg"))
        Image.fromarray(pixels).save(paths[-1], quality=90)
    return paths


def write_tiny_store(path: Path) -> None:
    """5 images, K = 2; image 4 skipped, image 3 used the box fallback."""
    boxes = [np.array([[0, 0, 32, 24], [20, 10, 24, 20], [5, 5, 10, 10]])] * 4
    boxes.append(np.array([[0, 0, 64, 48]]))
    neighbours = np.array([[1, 2], [0, 2], [3, 0], [2, 1], [0, 1]])
    pair_index = [[np.array([[1, 1], [0, 0]]), np.array([[2, 2]])] for _ in range(4)]
    pair_index.append([np.array([[0, 0]]), np.array([[0, 0]])])
    sims = [[np.array([0.91, 0.5]), np.array([0.3])] for _ in range(4)]
    sims[1][0] = np.array([0.95, 0.2])  # 1 -> 0 beats 0 -> 1: shown once, as 1 -> 0
    sims[3][0] = np.array([0.7, 0.6])
    sims.append([np.array([0.99]), np.array([0.1])])  # a skipped query: never shown
    write_store(
        path,
        boxes,
        neighbours,
        pair_index,
        {"fingerprint": FINGERPRINT, "settings": {"k": 2}},
        pair_sims=sims,
        flags=np.array([0, 0, 0, FLAG_FALLBACK, FLAG_SKIPPED]),
    )
    (path / "timing.json").write_text(json.dumps({"wall_time_s": 4.5, "images_per_s": 21.0}))


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("report")
    work = root / "work"
    photos = write_photos(root / "photos", 5)
    write_run(work / "stage1", orl=False, seed=1)
    write_tiny_store(work / "stage2")
    write_run(work / "stage3", orl=True, seed=2)
    (work / "eval").mkdir()
    (work / "eval" / "results.json").write_text(json.dumps(RESULTS))
    pipeline = {"data_fingerprint": FINGERPRINT, "data": [str(root / "photos")]}
    pipeline |= {"stages": {"eval": {"wall_time_s": 7.75, "status": "done"}}}
    (work / "pipeline.json").write_text(json.dumps(pipeline))
    html_out, md_out = work / "report.html", work / "report.md"
    write_report(work, html_out, md_out, photos, attention_size=32)
    return html_out, md_out, photos


class Page(HTMLParser):
    """Collects tags, unmatched tags, <img> sources and table cells."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: list[list[list[str]]] = []
        self.texts: list[tuple[str, str]] = []  # (enclosing tag, text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] in ("td", "th"):
            self.tables[-1][-1][-1] += data
        if data.strip() and self.stack:
            self.texts.append((self.stack[-1], data.strip()))


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def test_html_is_well_formed_and_fetches_nothing(full_report: tuple[Path, Path, list[str]]) -> None:
    page = parse(full_report[0])
    assert page.errors == [] and page.stack == []
    assert not any(tag in ("script", "link", "iframe", "object") for tag, _ in page.tags)
    urls = [v for _, attrs in page.tags for v in attrs.values() if v and "://" in v]
    assert urls == []
    styles = [text for tag, text in page.texts if tag == "style"]
    assert len(styles) == 1 and "url(" not in styles[0] and "@import" not in styles[0]


def test_every_picture_is_an_embedded_valid_png(full_report: tuple[Path, Path, list[str]]) -> None:
    sources = [attrs.get("src") or "" for tag, attrs in parse(full_report[0]).tags if tag == "img"]
    # 2 curves x 2 runs, 3 stage-2 histograms, the pair gallery, the attention maps.
    assert len(sources) == 9
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True))) as img:
            assert img.format == "PNG"
            img.verify()


def test_evaluation_table_has_the_three_rows_and_the_protocol(
    full_report: tuple[Path, Path, list[str]],
) -> None:
    page = parse(full_report[0])
    table = next(t for t in page.tables if t[0][0] == "model")
    assert table == [
        ["model", "mAP", "top1"],
        ["random init", "0.3125", "12.5"],
        ["BYOL", "0.5512", "40.25"],
        ["ORL", "0.6021", "44.75"],
    ]
    assert ("p", f"Protocol: {RESULTS['protocol']}") in page.texts


def test_stage_table_gives_wall_time_images_per_s_and_the_fingerprint(
    full_report: tuple[Path, Path, list[str]],
) -> None:
    page = parse(full_report[0])
    stages = next(t for t in page.tables if t[0][0] == "stage")
    assert [row[1:] for row in stages[1:]] == [
        ["done", "12.5", "87.5"],
        ["done", "4.5", "21"],
        ["done", "33.25", "87.5"],
        ["done", "7.75", "-"],
    ]
    assert ("p", f"Data-set fingerprint: {FINGERPRINT}") in page.texts
    counts = dict(row for row in next(t for t in page.tables if t[0] == ["", "count"])[1:])
    assert counts["skipped (undecodable)"] == "1" and counts["box fallback"] == "1"
    assert counts["pairs"] == str(4 * 3 + 2)
    assert FINGERPRINT in full_report[1].read_text(encoding="utf-8")


def test_configs_are_shown_verbatim(full_report: tuple[Path, Path, list[str]]) -> None:
    pres = [text for tag, text in parse(full_report[0]).texts if tag == "pre"]
    assert "method: byol\narch: resnet18" in pres and "method: orl\narch: resnet18" in pres


def test_markdown_references_only_existing_pngs(full_report: tuple[Path, Path, list[str]]) -> None:
    md = full_report[1]
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md.read_text(encoding="utf-8"))
    assert len(refs) == 9 and len(set(refs)) == 9
    for ref in refs:
        assert not Path(ref).is_absolute()
        with Image.open(md.parent / ref) as img:
            assert img.format == "PNG"
    assert "| random init | 0.3125 | 12.5 |" in md.read_text(encoding="utf-8")


def test_missing_parts_render_as_not_run(tmp_path: Path) -> None:
    work = tmp_path / "work"
    write_run(work / "stage1", orl=False, seed=None)  # no checkpoint, nothing after stage 1
    write_report(work, work / "r.html", work / "r.md", image_paths=None, attention_size=32)
    texts = parse(work / "r.html").texts
    for heading in ("Stage 2: correspondence discovery", "Stage 3: object-level ORL", "Evaluation"):
        at = texts.index(("h2", heading))
        assert texts[at + 1] == ("p", "not run")
    assert texts[texts.index(("h2", "Attention maps: BYOL vs ORL (Figure 4)")) + 1][1].startswith(
        "not run"
    )
    assert "## Evaluation\n\n*not run*" in (work / "r.md").read_text(encoding="utf-8")


def test_best_pairs_keep_one_pair_per_image_pair_best_first(tmp_path: Path) -> None:
    write_tiny_store(tmp_path / "corr")
    picks = best_pairs(CorrespondenceStore.open(tmp_path / "corr"), 10)
    # 0 -> 1 (0.91) and 3 -> 2 (0.7) lose to the other direction; ties keep store order.
    assert [(p.query, p.neighbour) for p in picks] == [(1, 0), (2, 3), (0, 2), (1, 2), (3, 1)]
    assert picks[0].similarity == pytest.approx(0.95, abs=1e-3)
    assert picks[0].query_box == (20, 10, 24, 20) and picks[0].neighbour_box == (20, 10, 24, 20)


def test_the_report_draws_as_many_photos_and_pairs_as_asked(tmp_path: Path) -> None:
    work = tmp_path / "work"
    write_run(work / "stage1", orl=False, seed=1)
    write_tiny_store(work / "stage2")
    photos = write_photos(tmp_path / "photos", 5)

    def heights(photo_count: int, pair_count: int) -> dict[str, int]:
        blocks = report_blocks(work, photos, 32, photos=photo_count, pairs=pair_count)
        return {b.name: b.image.height for b in blocks if isinstance(b, Figure)}

    few, many = heights(1, 1), heights(3, 4)
    assert few["attention"] < many["attention"]  # one row per photo
    assert few["stage2_top_pairs"] < many["stage2_top_pairs"]  # two cells per row


def test_orl_loss_terms_are_separate_series_with_gaps_for_nulls() -> None:
    records = [
        {"step": 1, "loss": 3.0, "loss_image": 1.0, "loss_intra": 1.0, "loss_inter": 1.0},
        {"step": 2, "loss": None, "loss_image": 0.9, "loss_intra": 0.8, "loss_inter": 0.7},
    ]
    series = loss_series(records)
    assert [s.name for s in series] == ["loss", "loss_image", "loss_intra", "loss_inter"]
    assert np.isnan(series[0].y[1]) and series[3].y.tolist() == [1.0, 0.7]


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ticks = nice_ticks(0.00031, 0.00118)
    assert ticks[0] <= 0.00031 and ticks[-1] >= 0.00118 and 0.0006 in ticks
    assert nice_ticks(1.5, 4.5, min_step=1.0) == [1.0, 2.0, 3.0, 4.0, 5.0]  # counts: no halves


def test_line_plot_draws_a_rising_series_upwards() -> None:
    img = line_plot([Series("up", np.arange(10.0), np.arange(10.0))], "t", "step")
    ys, xs = np.nonzero(np.all(np.asarray(img) == PALETTE[0], axis=-1))
    plot = xs < img.width - 150  # leave out the legend swatch in the top-right corner
    left, right = ys[plot][xs[plot] < 150], ys[plot][xs[plot] > 400]
    assert len(left) and len(right) and left.mean() > right.mean()  # image y grows downwards


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    chromium() is None, reason="Chromium is not installed (apt-get install chromium)"
)
def test_chromium_renders_a_non_blank_page(
    full_report: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    shot = tmp_path / "shot.png"
    cmd = [str(chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"]
    cmd += ["--no-first-run", "--disable-background-networking", "--disable-component-update"]
    cmd += ["--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}"]
    cmd += ["--window-size=1200,1600", full_report[0].resolve().as_uri()]
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    with Image.open(shot) as img:
        px = np.asarray(img.convert("RGB"))
    assert px.shape[:2] == (1600, 1200)
    assert px.std() > 20
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 100


def test_monitor_lines_make_their_own_curve(tmp_path: Path) -> None:
    """metrics.jsonl mixes training lines and the online kNN monitor's (no loss): the loss and lr
    plots read the training lines, the monitor gets its own figure."""
    run = tmp_path / "stage1"
    run.mkdir()
    lines = [{"step": s, "epoch": s / 3, "loss": 2.0 - 0.1 * s, "lr": 0.1} for s in range(1, 7)]
    lines.insert(3, {"step": 3, "epoch": 1.0, "knn_top1": 0.4, "knn_map": 0.3, "knn_seconds": 1.0})
    lines.append({"step": 6, "epoch": 2.0, "knn_top1": 0.5, "knn_map": 0.35, "knn_seconds": 1.0})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    blocks = training_blocks(tmp_path, "stage1")
    names = [b.name for b in blocks if isinstance(b, Figure)]
    assert names == ["stage1_loss", "stage1_lr", "stage1_monitor"]


HOSTILE = (
    "<img src=x onerror=alert(1)> [click](javascript:alert(1)) **bold** `code` a|b ~~s~~ "
    "&lt; loss_image #3 !x"
)


@pytest.mark.parametrize("text", [HOSTILE, "- item", "12. item", "1) item", "+ x", "# title"])
def test_markdown_escape_renders_the_text_itself(text: str) -> None:
    markdown = pytest.importorskip("markdown")  # Python-Markdown, installed with TensorBoard
    escaped = md_escape(text)
    for rendered in (
        markdown.markdown(escaped),
        markdown.markdown(f"| a |\n|---|\n| {escaped} |", extensions=["tables"]),
    ):
        assert "<img" not in rendered and "<a " not in rendered and "<strong>" not in rendered
        assert "<code>" not in rendered and "<del>" not in rendered and "<li>" not in rendered
        assert "<h1>" not in rendered
        cell = re.sub(r"<[^>]+>", "", rendered).strip()
        assert html.unescape(cell).replace("\n", "").strip().endswith(text.split()[-1])


def test_report_markdown_escapes_folder_names_and_data_sources(tmp_path: Path) -> None:
    work = tmp_path / "work_<b>[x](javascript:alert(1))"
    write_run(work / "stage1", orl=False, seed=None)
    source = "photos/<script>alert(1)</script>|*"
    (work / "pipeline.json").write_text(json.dumps({"data_fingerprint": "f", "data": [source]}))
    write_report(work, work / "r.html", work / "r.md", image_paths=None, attention_size=32)
    md = (work / "r.md").read_text(encoding="utf-8")
    md = re.sub(r"(?ms)^```.*?^```$", "", md)  # code blocks are literal: the resolved configs
    assert "<script>" not in md and "<b>" not in md
    assert "photos/&lt;script&gt;alert(1)&lt;/script&gt;&#124;\\*" in md
    markdown = pytest.importorskip("markdown")
    assert "<a " not in markdown.markdown(md)


def test_the_report_files_are_written_whole(
    tmp_path: Path, disk_full_midway: Callable[[], None]
) -> None:
    work = tmp_path / "work"
    write_run(work / "stage1", orl=False, seed=None)
    disk_full_midway()
    write_report(work, work / "r.html", work / "r.md", image_paths=None, attention_size=32)
    assert (work / "r.html").read_text().rstrip().endswith("</html>")
    assert "## Configurations" in (work / "r.md").read_text()
