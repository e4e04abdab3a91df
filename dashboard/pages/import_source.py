"""导入数据源 Import: onboard a new source without a hand-written mapping (admins only; app.py refuses the page
to other roles): an upload or a path, the proposed mapping in an editor, the gate on a sample, save."""

from dashboard.components.frame import start_page
from dashboard.components.import_view import import_section

LANG = start_page("import_source", without_data=None)
import_section(LANG)
