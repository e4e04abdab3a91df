"""The purchased leads source: vendors' lists as one Excel workbook, import dates partly as bare serials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np

from dashboard.demo.common import DAY, EXCEL_EPOCH_DAYS, I64, fmt_day, lookup, pick
from dashboard.demo.context import Context
from dashboard.demo.dirty import companies, emails, names, opt, phones
from dashboard.demo.tables import CITY, PROVINCE, VENDORS

_DATE_HEADER = "入库日期"


@dataclass(frozen=True)
class _Sheet:
    """The rows to write: text columns before and after the import date, and the import date itself."""

    before: dict[str, list[str | None]]
    after: dict[str, list[str | None]]
    how: list[int]  # per lead: 0 a date cell, 1 a bare serial number, 2 Chinese text
    serial: list[int]  # the import date as an Excel serial
    text: list[str | None]  # the import date as Chinese text
    rows: I64  # the lead written on each row, in order (vendors' lists repeat a few)


def write(ctx: Context) -> None:
    """purchased_leads.xlsx: one sheet with every purchased lead."""
    rng = ctx.rng("purchased_leads")
    leads = ctx.leads
    idx = np.flatnonzero(leads.source == 3)
    p = leads.person[idx]
    sheet = _sheet(ctx, rng, idx, p)
    _write_workbook(ctx.out("purchased_leads", "purchased_leads.xlsx"), ctx.clock.as_of, sheet)
    n = sheet.rows.size
    ctx.count("purchased_leads.leads", n)
    ctx.add_truth("purchased_leads", leads.id.gather(idx), p)
    ctx.say(f"purchased_leads: {n:,} rows")


def _sheet(ctx: Context, rng: np.random.Generator, idx: I64, p: I64) -> _Sheet:
    people, leads = ctx.people, ctx.leads
    n = idx.size
    day = leads.created[idx] // DAY
    before: dict[str, list[str | None]] = {
        "线索编号": leads.id.gather(idx).to_list(),
        "姓名": names(ctx, rng, p, typo=0.04).to_list(),
        "手机号码": phones(ctx, rng, p, [90, 0, 5, 0, 5, 0], missing=0.0, invalid=0.025).to_list(),
        "邮箱": emails(ctx, rng, p, missing=0.4, upper=0.02).to_list(),
        "公司名称": companies(ctx, rng, p, missing=0.05).to_list(),
        "职位": opt(rng, people.title.gather(p), 0.3).to_list(),
        "行业": people.industry.gather(p).to_list(),
        "省份": lookup(PROVINCE, people.city[p]).to_list(),
        "城市": lookup(CITY, people.city[p]).to_list(),
    }
    after: dict[str, list[str | None]] = {
        "名单批次": leads.campaign.gather(idx).to_list(),
        "供应商": lookup(VENDORS, leads.batch_of[idx] % len(VENDORS)).to_list(),
    }
    # the import date: real date cells mostly, bare serial numbers and Chinese text in some rows
    how = pick(rng, n, [65, 25, 10]).tolist()
    text = fmt_day(day, "%Y年%-m月%-d日").to_list()
    serial = (day - EXCEL_EPOCH_DAYS).tolist()
    extra = round(n * 0.005)  # vendors' lists repeat a few rows
    rows = np.sort(np.concatenate([np.arange(n), rng.choice(n, size=extra, replace=False)]), kind="stable")
    return _Sheet(before, after, how, serial, text, rows)


def _write_workbook(path: Path, as_of: date, sheet: _Sheet) -> None:
    import xlsxwriter

    header = [*sheet.before, _DATE_HEADER, *sheet.after]
    columns = [*sheet.before.values(), *sheet.after.values()]
    jd = len(sheet.before)  # the import date's column
    where = [*range(jd), *range(jd + 1, len(header))]
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})  # rows stream to disk
    wb.set_properties({"created": datetime(as_of.year, as_of.month, as_of.day), "author": "市场部"})
    ws = wb.add_worksheet("线索名单")
    ws.set_column(0, len(header) - 1, 14)
    ws.freeze_panes(1, 0)
    ws.write_row(0, 0, header, wb.add_format({"bold": True, "bg_color": "#DDEBF7"}))
    datefmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    write_string, write_number = ws.write_string, ws.write_number
    how, serial, text = sheet.how, sheet.serial, sheet.text
    # Excel cells are written one by one: xlsxwriter has no columnar write (the one Python loop)
    for r, i in enumerate(sheet.rows.tolist(), start=1):
        for j, col in zip(where, columns, strict=True):
            value = col[i]
            if value is not None:
                write_string(r, j, value)
        if how[i] == 0:
            write_number(r, jd, serial[i], datefmt)
        elif how[i] == 1:
            write_number(r, jd, serial[i])
        else:
            write_string(r, jd, text[i])
    wb.close()
