"""A small, messy, multi-format company written to disk: the inputs the tests refresh.

Values are chosen so the expected results can be counted by hand (see the asserts in tests).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.core.config import CONFIG_ENV, Settings

CONFIG = """
data_dir = "data"
language = "en"
retention = 3

[channel_aliases]
paid_search = ["百度推广", "baidu_sem", "SEM"]
trade_show = ["展会"]
website = ["官网"]

[stage_aliases]
lead = ["线索"]
won = ["赢单", "Closed Won"]
lost = ["输单"]
opportunity = ["商机"]

[[sources]]
name = "trade_show"
kind = "csv"
title = "展会登记"
owner = "市场部"
schedule = "0 2 * * *"
  [[sources.tables]]
  entity = "leads"
  path = "imports/trade_show/*.csv"
  columns = { lead_id = "登记号", created_at = "登记时间", channel = "来源", phone = "手机", name = "姓名" }
  constants = { region = "华东" }

[[sources]]
name = "crm"
kind = "csv"
title = "CRM"
owner = "销售部"
  [[sources.tables]]
  entity = "leads"
  path = "imports/crm/leads.csv"
  columns = { lead_id = "Lead ID", created_at = "Created", channel = "Source", phone = "Mobile", email = "Email", owner = "Owner" }
  [[sources.tables]]
  entity = "lead_events"
  path = "imports/crm/stages.csv"
  columns = { lead_id = "Lead ID", stage = "Stage", occurred_at = "Date", amount = "Amount" }

[[sources]]
name = "erp"
kind = "excel"
title = "ERP"
owner = "财务部"
  [[sources.tables]]
  entity = "customers"
  path = "imports/erp/customers.xlsx"
  columns = { source_record_id = "客户编号", name = "客户名称", phone = "联系电话", id_number = "身份证号", created_at = "建档日期" }
  [[sources.tables]]
  entity = "orders"
  path = "imports/erp/orders.xlsx"
  columns = { order_id = "订单号", customer_ref = "客户编号", ordered_at = "下单日期", amount = "金额" }

[[sources]]
name = "web_forms"
kind = "json"
title = "官网表单"
  [[sources.tables]]
  entity = "leads"
  path = "imports/web/*.jsonl"
  columns = { lead_id = "id", created_at = "submitted_at", channel = "utm_source", phone = "phone", email = "email" }

[[sources]]
name = "marketing"
kind = "csv"
title = "市场费用"
  [[sources.tables]]
  entity = "marketing_spend"
  path = "imports/marketing/spend.csv"
  columns = { channel = "渠道", spend_date = "日期", cost = "费用" }
"""

BASE = datetime(2026, 3, 1, 9, 0)


def write_company(root: Path) -> Path:
    """Write the inputs and cockpit.toml under root; return the config path."""
    imports = root / "imports"
    for sub in ("trade_show", "crm", "erp", "web", "marketing"):
        (imports / sub).mkdir(parents=True, exist_ok=True)

    # Trade show: 20 leads in GBK, phones in several formats, one exact duplicate row, one empty channel.
    lines = ["登记号,登记时间,来源,手机,姓名"]
    for i in range(20):
        phone = ["+86 138-0013-80{:02d}", "138 0013 80{:02d}", "0086 1380013 80{:02d}", "1380013 80{:02d}"][i % 4]
        channel = "" if i == 7 else "展会"
        when = (BASE + timedelta(days=i)).strftime("%Y/%-m/%-d %H:%M")
        lines.append(f"TS-{i},{when},{channel},{phone.format(i)},张{i}")
    lines.append(lines[3])  # duplicated row
    (imports / "trade_show" / "ts_2026.csv").write_bytes(("\n".join(lines) + "\n").encode("gbk"))

    # CRM: 30 leads (SEM written three ways), funnel events; 6 won with amounts.
    leads = ["Lead ID,Created,Source,Mobile,Email,Owner"]
    for i in range(30):
        src = ["百度推广", "baidu_sem", " SEM "][i % 3]
        leads.append(f"CRM-{i},{(BASE + timedelta(days=i)).date()},{src},1390013{i:04d},U{i}@Example.com,rep{i % 3}")
    (imports / "crm" / "leads.csv").write_text("\n".join(leads) + "\n", encoding="utf-8")
    stages = ["Lead ID,Stage,Date,Amount"]
    for i in range(30):
        stages.append(f"CRM-{i},线索,{(BASE + timedelta(days=i)).date()},")
        if i < 10:
            stages.append(f"CRM-{i},商机,{(BASE + timedelta(days=i + 5)).date()},")
        if i < 6:
            stages.append(
                f"CRM-{i},{'赢单' if i % 2 else 'Closed Won'},{(BASE + timedelta(days=i + 9)).date()},{1000 * (i + 1)}"
            )
    for i in range(3):  # trade-show leads tracked in the CRM: TS-0 and TS-1 won
        stages.append(
            f"TS-{i},{'赢单' if i < 2 else '输单'},{(BASE + timedelta(days=20)).date()},{500 if i < 2 else ''}"
        )
    (imports / "crm" / "stages.csv").write_text("\n".join(stages) + "\n", encoding="utf-8-sig")

    # ERP: Excel with Excel serial dates; customers share phones with the trade show (same people).
    serial0 = (BASE - datetime(1899, 12, 30)).days
    pl.DataFrame(
        {
            "客户编号": [f"E{i}" for i in range(12)],
            "客户名称": [f"张{i}" for i in range(12)],
            "联系电话": [f"1380013{8000 + i}" for i in range(12)],
            "身份证号": ["11010519491231002X"] + [None] * 11,
            "建档日期": [str(serial0 + i) for i in range(12)],
        }
    ).write_excel(imports / "erp" / "customers.xlsx")
    pl.DataFrame(
        {
            "订单号": [f"O{i}" for i in range(24)],
            "客户编号": [f"E{i % 12}" for i in range(24)],
            "下单日期": [str(serial0 + 30 + i) for i in range(24)],
            "金额": ["¥1,200.00"] * 24,
        }
    ).write_excel(imports / "erp" / "orders.xlsx")

    # Web forms: JSON Lines, timestamps with a zone.
    with open(imports / "web" / "forms.jsonl", "w", encoding="utf-8") as f:
        for i in range(10):
            when = (BASE + timedelta(days=i)).strftime("%Y-%m-%dT%H:%M:%S+08:00")
            f.write(
                json.dumps(
                    {
                        "id": f"WEB-{i}",
                        "submitted_at": when,
                        "utm_source": "官网",
                        "phone": f"13900130{i:03d}",
                        "email": f"u{i}@example.com",
                    }
                )
                + "\n"
            )

    # Spend: SEM 3,000 and trade show 1,000 in March; website has no spend.
    spend = ["渠道,日期,费用", '百度推广,2026-03-01,"2,000"', "SEM,2026-03-15,1000", "展会,2026年3月2日,1000"]
    (imports / "marketing" / "spend.csv").write_text("\n".join(spend) + "\n", encoding="utf-8")

    cfg = root / "cockpit.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    return cfg


APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


def open_app_page(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, page: str, query: dict[str, str] | None = None
) -> AppTest:
    """The app on ``settings``' company, in English, switched to ``pages/<page>.py`` with ``query`` in the
    URL; fails on an exception."""
    monkeypatch.setenv(CONFIG_ENV, str(settings.base_dir / "cockpit.toml"))
    at = AppTest.from_file(APP, default_timeout=60)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    if at.sidebar.radio[0].value != "en":
        at.sidebar.radio[0].set_value("en").run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at
