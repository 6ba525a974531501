"""The one place where URIs and names that come from a user are checked.

Flags, config files, ``--set`` overrides, environment variables and table rows all pass here
before they are used:

- ``check_uri(value, what)``: a local path, ``file://`` or ``s3://`` URI; one carrying
  credentials (``s3://KEY:SECRET@bucket``, a password or a ``token=`` query) is refused
  **without echoing it**: secrets come from the environment (the AWS chain, ``MLFLOW_TRACKING_*``).
- ``check_name(value, what)``: a name that becomes a folder or a run (run names, dataset
  names): letters, digits, ``.``, ``_``, ``-``, not starting with a dot, so it cannot climb out
  of the folder it is put in (``../escape``) or hide.
- ``inside(root, relpath, what)``: a relative path joined to ``root`` and normalised; it must
  stay inside ``root``.
- ``redact(text)``: any URI credentials in a message replaced by ``***``, for errors raised by
  pyarrow, boto3 or fsspec that quote the URI they were given.

Nothing here imports more than the standard library.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlparse

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""Names that become folders, runs or MLflow run names."""
URI_SCHEMES = ("s3", "file")

_CREDENTIALS_IN_URI = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<auth>[^/@\s'\"]+)@")
_SECRET_QUERY = re.compile(r"(password|secret|token|key|signature)=", re.IGNORECASE)
_SECRET_QUERY_VALUE = re.compile(
    r"((?:password|secret|token|key|signature)=)[^&\s'\"]+", re.IGNORECASE
)


class UserInputError(ValueError):
    """A user-given URI or name that cannot be used; the message never holds a secret."""


def carries_credentials(value: str) -> bool:
    """True for a URI with a user:password part (or any user part for s3://), or a query
    holding a password, secret, token or key."""
    if "://" not in value:
        return False
    parsed = urlparse(value)
    try:
        password = parsed.password
    except ValueError:  # an unparsable netloc: treat as suspicious
        return True
    return bool(
        password is not None
        or (parsed.username and parsed.scheme.lower() == "s3")
        or _SECRET_QUERY.search(parsed.query or "")
    )


def credentials_message(what: str) -> str:
    return (
        f"{what}: the URI carries credentials; remove them and provide them through the "
        "environment (AWS credential chain for s3://, MLFLOW_TRACKING_USERNAME/"
        "MLFLOW_TRACKING_PASSWORD or the database's own mechanism for MLflow)"
    )


def check_uri(value: str, what: str, schemes: tuple[str, ...] = URI_SCHEMES) -> str:
    """``value`` if it is a usable local path or URI of ``schemes``; else UserInputError naming
    ``what`` (and never echoing a value that carries credentials)."""
    if value is None or not str(value).strip():
        raise UserInputError(f"{what}: expected a local path or an s3:// URI, got nothing")
    value = str(value)
    if carries_credentials(value):
        raise UserInputError(credentials_message(what))
    if "://" in value:
        scheme = value.split("://", 1)[0].lower()
        if scheme not in schemes:
            allowed = ", ".join(f"{s}://" for s in schemes)
            raise UserInputError(
                f"{what}: invalid URI scheme {scheme + '://'!r}; expected a local path or {allowed}"
            )
    return value


def check_name(value: str, what: str) -> str:
    """``value`` if it is a safe name (``NAME_PATTERN``); else UserInputError naming ``what``."""
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise UserInputError(
            f"{what}: invalid value {value!r}; expected letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, at most 128 (it names folders and runs)"
        )
    return value


def inside(root: str, relpath: str, what: str) -> str:
    """``root`` joined with the relative ``relpath``, normalised (``a/../b`` -> ``b``); a path
    that would leave ``root`` is refused."""
    if "://" in relpath or os.path.isabs(relpath):
        raise UserInputError(f"{what}: expected a path relative to {root!r}, got {relpath!r}")
    joined = os.path.normpath(os.path.join("/", relpath)).lstrip("/")
    climbs = os.path.normpath(relpath).startswith("..")
    if climbs or not joined:
        raise UserInputError(f"{what}: {relpath!r} leaves {root!r}; expected a path inside it")
    return f"{root.rstrip('/')}/{joined}"


def redact(text: str) -> str:
    """``text`` with URI credentials (``scheme://user:pass@``) and secret query values
    replaced by ``***``."""
    text = _CREDENTIALS_IN_URI.sub(lambda m: f"{m['scheme']}***@", str(text))
    return _SECRET_QUERY_VALUE.sub(lambda m: f"{m.group(1)}***", text)


__all__ = [
    "NAME_PATTERN",
    "URI_SCHEMES",
    "UserInputError",
    "carries_credentials",
    "check_name",
    "check_uri",
    "credentials_message",
    "inside",
    "redact",
]
