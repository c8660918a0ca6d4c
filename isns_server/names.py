"""iSCSI name syntax (RFC 3720 3.2.6.3, RFC 3722)."""

import re
import unicodedata

MAX_ISCSI_NAME_BYTES = 223

_FORMS = (
    # iqn.YYYY-MM.reversed.domain[:anything]
    re.compile(r"iqn\.\d{4}-(0[1-9]|1[0-2])(\.[a-z0-9-]+)+(:.*)?"),
    re.compile(r"eui\.[0-9a-f]{16}"),
    re.compile(r"naa\.([0-9a-f]{16}|[0-9a-f]{32})"),
)


def iscsi_name_problem(name: str) -> str | None:
    """What is wrong with `name` as an iSCSI name, or None when it is valid.

    Names are compared case-insensitively by initiators, so only the lower-case
    (stringprep-normalised) form is accepted here.
    """
    if len(name.encode()) > MAX_ISCSI_NAME_BYTES:
        return f"longer than {MAX_ISCSI_NAME_BYTES} bytes"
    if name != name.lower():
        return "must be lower case (iSCSI names are normalised to lower case)"
    if not any(form.fullmatch(name) for form in _FORMS):
        return "expected iqn.YYYY-MM.reversed.domain[:identifier], eui.<16 hex> or naa.<16|32 hex>"
    return None


def normalize_name(name: str) -> str:
    """iSCSI names and EIDs are compared after stringprep/nameprep (RFC 4171 5.6.2): case-folded."""
    return name.lower() if name.isascii() else unicodedata.normalize("NFKC", name.casefold())
