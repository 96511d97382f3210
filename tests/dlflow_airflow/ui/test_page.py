"""The report page: what it shows, and that workspace data never becomes markup."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from dlflow_airflow.contract.artifacts import DRIFT_FILE, METRICS_FILE
from dlflow_airflow.ui.page import render_page
from dlflow_airflow.ui.run_report import build_report
from tests.dlflow_airflow.ui import workspace as ws

EVALUATE = "evaluate/TAG=m1/dt=2026-01-02"
HOSTILE = "<script>alert('x')</script>"
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "code", "span",
    "section", "table", "thead", "tbody", "tr", "th", "td", "ul", "li", "figure", "img",
    "figcaption",
}  # fmt: skip


class Tags(HTMLParser):
    """Every tag of a page, and the ``src`` of its images."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.images: list[str] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")


def _page(tmp_path: Path, **write: object) -> str:
    p = ws.pipeline(tmp_path)
    ws.write_run(p, **write)  # type: ignore[arg-type]
    return render_page(build_report(ws.run_tasks(p)), lambda stage, name: f"/p/{stage}/{name}")


def test_the_page_shows_metrics_plots_drift_fmap_and_manifest(tmp_path: Path):
    page = _page(tmp_path)
    metrics = json.loads((tmp_path / EVALUATE / METRICS_FILE).read_text())
    assert f"data-metric='auc' data-value='{metrics['auc']!r}'>{metrics['auc']:.4f}<" in page
    parsed = Tags()
    parsed.feed(page)
    assert parsed.images == [
        "/p/evaluate/roc.png",
        "/p/evaluate/pr.png",
        "/p/evaluate/calibration.png",
    ]
    assert "<table class='fmap'>" in page
    assert "data-feature='city'>3: paris, lyon, nice<" in page
    assert "<table class='drift'>" in page and "&#x27;city&#x27;: psi 0.3100 &gt; 0.25" in page
    assert "<table class='manifest'>" in page and "(<span class='blessed'>blessed</span>)" in page
    assert "<span class='blessed'>blessed</span> (bounds" in page  # the gate's verdict


def test_workspace_data_is_escaped_everywhere(tmp_path: Path):
    page_dir = tmp_path / "ws"
    p = ws.pipeline(page_dir)
    ws.write_run(
        p,
        vocab=[HOSTILE, "a'b\"c", "<img src=x onerror=alert(1)>"],
        manifest={"model": {"tag": "m1"}, "note": "<b onmouseover=alert(1)>hi</b>"},
    )
    metrics_file = page_dir / EVALUATE / METRICS_FILE
    metrics = json.loads(metrics_file.read_text())
    metrics["<i>m</i>"] = 1.5
    metrics["gate"]["missed"] = [HOSTILE]
    metrics_file.write_text(json.dumps(metrics))
    drift_file = page_dir / "encoded/TAG=f1/dt=2026-01-02" / DRIFT_FILE
    drift = json.loads(drift_file.read_text())
    drift["features"][0]["feature"] = HOSTILE
    drift["breaches"] = [HOSTILE]
    drift_file.write_text(json.dumps(drift))
    run = ws.run_tasks(p, {"merge": "skipped"}, merge=HOSTILE)
    page = render_page(build_report(run), lambda stage, name: f"/p/{stage}/{name}?a='b'")

    parsed = Tags()
    parsed.feed(page)
    assert parsed.tags <= ALLOWED_TAGS, parsed.tags - ALLOWED_TAGS
    assert parsed.handlers == []
    assert "<script>" not in page and "<b " not in page and "<i>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "a&#x27;b&quot;c" in page
    assert "&lt;i&gt;m&lt;/i&gt;" in page
    assert parsed.images[0] == "/p/evaluate/roc.png?a='b'"  # an attribute, quoted whole


def test_sections_without_data_say_so(tmp_path: Path):
    p = ws.pipeline(tmp_path)
    run = ws.run_tasks(p)  # nothing written: every partition missing
    page = render_page(build_report(run), lambda stage, name: "")
    assert page.count("MISSING") == 5  # raw, encoded, femodel, model, evaluate
    assert "blocked by gate" in page  # predict: no model was judged
    assert "the evaluate partition is not complete" in page
    assert "the fmap partition is not complete" in page
