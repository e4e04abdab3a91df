"""The Import page's parts: an input (an upload or a path on the server), its proposed mapping in an editor,
the quality gate on its sample, and saving the source to cockpit.toml, the same steps as `cockpit source
add` (dashboard/sources/onboard.py, dashboard/pipeline/onboard.py). Admins only; checked again here.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import polars as pl
import streamlit as st

from dashboard.components import gate_text, labels
from dashboard.components.data import settings, user
from dashboard.core.config import Settings, find_config
from dashboard.core.entities import ENTITIES
from dashboard.core.errors import CockpitError, SourceError
from dashboard.i18n import Lang, t
from dashboard.pipeline import onboard
from dashboard.sources.onboard import (
    SUFFIX_KINDS,
    Proposal,
    TableMapping,
    propose,
    remap,
    sample_file,
    settings_aliases,
)

IMPORT_ROLES = ("admin",)  # no data-owner role exists yet (query/security.py ROLES)
_PREVIEW = "_import_preview"
_DONE = "_import_done"
_UPLOADS = "_import_uploads"
_PROBLEM = "_import_problem"
_NONE = ""


def _require_admin() -> None:
    if user().role not in IMPORT_ROLES:
        raise CockpitError("only an admin adds a source")


def import_section(lang: Lang) -> None:
    _require_admin()
    done = st.session_state.pop(_DONE, None)
    if done:
        st.success(done)
    cfg = settings()
    picked = _input(lang, cfg)
    if picked is None:
        st.info(t("import.pick", lang))
        return
    read_from, final = picked
    entity = st.selectbox(
        t("import.entity", lang),
        [_NONE, *ENTITIES],
        format_func=lambda e: labels.value("entity", e, lang) if e else t("import.decided", lang),
    )
    try:
        proposal = propose(sample_file(read_from), settings_aliases(cfg), entity or None)
        proposal = replace(proposal, sample=replace(proposal.sample, label=final.name, path=final))
        tables = [_edit(lang, proposal, m, i) for i, m in enumerate(proposal.tables)]
    except CockpitError as e:
        st.error(e.message)
        return
    name = st.text_input(t("import.name", lang), value=onboard.default_name(final.name), max_chars=64)
    parts: list[onboard.Part] = [(replace(proposal, tables=tables), onboard.file_location(final, cfg.base_dir))]
    signature = repr((final, name, [(m.entity, m.columns, m.constants) for m in tables]))
    # callbacks, not return values: they run once per click, before the page is drawn again
    st.button(
        t("import.preview", lang),
        type="primary",
        key="import_preview",
        on_click=_preview,
        args=(parts, name, signature),
    )
    problem = st.session_state.pop(_PROBLEM, None)
    if problem:
        st.error(problem)
    held = st.session_state.get(_PREVIEW)
    if held and held[0] == signature:
        _show_gate(lang, held[1])
        st.button(t("import.save", lang), key="import_save", on_click=_save, args=(lang, held[1], read_from, final))


def _preview(parts: list[onboard.Part], name: str, signature: str) -> None:
    _require_admin()
    try:
        st.session_state[_PREVIEW] = (signature, onboard.onboard(settings(), parts, name))
    except CockpitError as e:
        st.session_state.pop(_PREVIEW, None)
        st.session_state[_PROBLEM] = e.message


# Streamlit writes the file picker's button and its size limit in English only ("Upload", "200MB per file"):
# hidden, and the page's own words drawn in their place (our strings; nothing a user typed)
_PICKER_CSS = """<style>
[data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"],
[data-testid="stFileUploaderDropzoneInstructions"] span { font-size: 0; visibility: hidden; }
[data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"]::after,
[data-testid="stFileUploaderDropzoneInstructions"] span::after { font-size: 0.875rem; visibility: visible; }
[data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"]::after { content: BUTTON; }
[data-testid="stFileUploaderDropzoneInstructions"] span::after { content: LIMIT; }
</style>"""


def _picker_text(lang: Lang, kinds: list[str]) -> None:
    mb, shown = st.get_option("server.maxUploadSize"), ", ".join(kinds).upper()
    button = json.dumps(t("import.upload.button", lang), ensure_ascii=False)
    limit = json.dumps(t("import.upload.limit", lang, mb=mb, kinds=shown), ensure_ascii=False)
    st.html(_PICKER_CSS.replace("BUTTON", button).replace("LIMIT", limit))


def _input(lang: Lang, cfg: Settings) -> tuple[Path, Path] | None:
    """(the file to read now, where the source will read it): an upload is kept in a temporary folder until
    it is saved under imports/; a path is read where it is (relative to the config's folder)."""
    how = st.radio(
        t("import.from", lang), ("upload", "path"), format_func=lambda k: t(f"import.from.{k}", lang), horizontal=True
    )
    if how == "path":
        text = st.text_input(t("import.path", lang), help=t("import.path_help", lang)).strip()
        if not text:
            return None
        path = Path(text) if Path(text).is_absolute() else cfg.base_dir / text
        return path, path
    kinds = sorted({s.lstrip(".") for s in SUFFIX_KINDS})
    _picker_text(lang, kinds)
    upload = st.file_uploader(t("import.upload", lang), type=kinds)
    if upload is None:
        return None
    uploads: dict[str, str] = st.session_state.setdefault(_UPLOADS, {})
    if upload.file_id not in uploads:
        folder = Path(tempfile.mkdtemp(prefix="cockpit-import-"))
        (folder / Path(upload.name).name).write_bytes(upload.getvalue())
        uploads[upload.file_id] = str(folder)
    read_from = Path(uploads[upload.file_id]) / Path(upload.name).name
    return read_from, cfg.base_dir / "imports" / read_from.name


def _edit(lang: Lang, proposal: Proposal, mapping: TableMapping, i: int) -> TableMapping:
    """One table's mapping in an editor: each canonical column, the input's column it reads, examples."""
    st.subheader(
        t("import.table", lang, entity=labels.value("entity", mapping.entity, lang), file=proposal.sample.label)
    )
    headers = [_NONE, *proposal.profiles]
    fields = ENTITIES[mapping.entity].columns  # the editor's rows, in this order: read back by position
    rows = [
        {
            "column": gate_text.field(mapping.entity, c.name, lang) + (" *" if c.required else ""),
            "source": mapping.columns.get(c.name, _NONE),
            "found": _how(lang, mapping.how.get(c.name, "")),
            "examples": ", ".join(proposal.profiles[h].samples) if (h := mapping.columns.get(c.name)) else "",
        }
        for c in fields
    ]
    edited = st.data_editor(
        pl.DataFrame(rows, schema=dict.fromkeys(("column", "source", "found", "examples"), pl.String)),
        key=f"import_map_{i}_{mapping.entity}",
        hide_index=True,
        width="stretch",
        placeholder="—",
        disabled=["column", "found", "examples"],
        column_config={
            "column": st.column_config.TextColumn(t("import.col.column", lang)),
            "source": st.column_config.SelectboxColumn(t("import.col.source", lang), options=headers),
            "found": st.column_config.TextColumn(t("import.col.found", lang)),
            "examples": st.column_config.TextColumn(t("import.col.examples", lang)),
        },
    )
    frame = edited if isinstance(edited, pl.DataFrame) else pl.from_pandas(edited)
    chosen = frame.get_column("source").to_list()
    columns = {c.name: str(s) for c, s in zip(fields, chosen, strict=True) if s}
    if mapping.constants:
        values = ", ".join(
            f"{gate_text.field(mapping.entity, k, lang)} = {labels.value(labels.COLUMNS.get(k, k), v, lang)}"
            for k, v in mapping.constants.items()
        )
        st.caption(t("import.constants", lang, values=values))
    if columns == mapping.columns:
        return mapping
    return remap(proposal, mapping.entity, columns, mapping.constants)


def _how(lang: Lang, how: str) -> str:
    """How a column was found, in the reader's language: by its header, by its values, a constant (none in
    the file, or a won date's column), or set by hand."""
    if how.startswith("constant: no "):
        return t("import.how.no_column", lang)
    if how.startswith("constant: '"):
        return t("import.how.won_date", lang, column=how.split("'")[1])
    if how == "header":
        return t("import.how.header", lang)
    if how.startswith("content: "):
        kind = how.removeprefix("content: ")
        return t("import.how.content", lang, kind=t(f"import.kind.{kind}", lang))
    return t("import.how.edited", lang) if how == "edited" else how


def _show_gate(lang: Lang, ob: onboard.Onboarding) -> None:
    gate = ob.gate
    st.subheader(t("import.gate", lang))
    st.dataframe(
        pl.DataFrame(
            {
                t("import.col.entity", lang): [labels.value("entity", p.entity, lang) for p in gate.tables],
                t("import.col.rows", lang): [p.rows for p in gate.tables],
                t("import.col.kept", lang): [p.kept for p in gate.tables],
                t("import.col.aside", lang): [p.set_aside for p in gate.tables],
            }
        ),
        hide_index=True,
    )
    # the findings hold the file's own headers and values: shown as text, never as markdown
    for line in (gate_text.row_issue(p.entity, i, lang) for p in gate.tables for i in p.issues):
        st.text(f"• {line}")
    if gate.quality:
        st.warning(t("import.accepted", lang))
        for line in gate_text.acceptance(gate, lang):
            st.text(f"• {line}")
    if gate.failed:
        st.error(t("import.fails", lang))
        for o in gate.failed:
            st.text(f"• {gate_text.outcome(o, lang)}")
    else:
        st.success(t("import.passes", lang))
    for o in gate.warnings:
        st.text(f"⚠ {gate_text.outcome(o, lang)}")
    st.code(ob.block, language="toml")


def _save(lang: Lang, ob: onboard.Onboarding, read_from: Path, final: Path) -> None:
    _require_admin()
    cfg = settings()
    try:
        if read_from != final:  # an upload: kept under imports/ beside the config, never over another file
            if final.exists():
                raise SourceError(t("import.exists", lang, file=str(final.relative_to(cfg.base_dir))))
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(read_from, final)
        onboard.append_source(find_config(), ob.block, ob.name)
    except CockpitError as e:
        st.session_state[_PROBLEM] = e.message
        return
    st.session_state.pop(_PREVIEW, None)
    st.session_state[_DONE] = t("import.saved", lang, name=ob.name)
