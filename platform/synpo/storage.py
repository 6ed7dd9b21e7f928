"""Object storage for local paths, ``file://`` and ``s3://`` URIs.

One small surface the rest of the platform uses for bytes at rest:

- :meth:`Storage.read_bytes` / :meth:`Storage.write_bytes` (atomic: readers see the old object or the
  whole new one, never a prefix of it — a temp file + ``os.replace`` locally, a single ``PutObject``
  on S3, which S3 only makes visible once complete),
- :meth:`Storage.exists`, :meth:`Storage.list` (sorted URIs under a prefix), :meth:`Storage.delete`,
- :meth:`Storage.arrow_filesystem` — the ``pyarrow.fs`` filesystem and path Ray Data readers and
  writers take as ``filesystem=`` / path.

S3 settings (endpoint, region, credentials) come from :class:`StorageConfig`, whose defaults are the
standard AWS environment variables, so ``AWS_ENDPOINT_URL`` + ``AWS_ACCESS_KEY_ID`` work unchanged
against MinIO, moto or any S3-compatible server.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pydantic
from pyarrow import fs as pafs

from synpo.config.base import StrictModel
from synpo.errors import UserError

SUPPORTED_SCHEMES = ("local path", "file://", "s3://")


def process_umask() -> int:
    """This process's umask, read without changing it (Linux's /proc; elsewhere set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass  # no /proc (macOS): the set-and-restore below
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class StorageError(UserError, OSError):
    """A storage operation failed; the message names the URI."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """The URI names no object."""


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


class StorageConfig(StrictModel):
    """Where S3 lives and how to sign requests. Unset fields fall back to the AWS environment variables."""

    endpoint_url: str | None = pydantic.Field(
        default=None,
        description="S3 endpoint URL for S3-compatible servers (MinIO, moto); "
        "unset = $AWS_ENDPOINT_URL_S3, then $AWS_ENDPOINT_URL, then AWS itself",
    )
    region: str | None = pydantic.Field(
        default=None, description="S3 region; unset = $AWS_REGION, then $AWS_DEFAULT_REGION, then us-east-1"
    )
    access_key_id: str | None = pydantic.Field(
        default=None, description="access key id; unset = $AWS_ACCESS_KEY_ID or the default credential chain"
    )
    secret_access_key: pydantic.SecretStr | None = pydantic.Field(
        default=None, description="secret key (prefer $AWS_SECRET_ACCESS_KEY; never printed)"
    )

    def resolved(self) -> ResolvedS3:
        secret = self.secret_access_key.get_secret_value() if self.secret_access_key else None
        return ResolvedS3(
            endpoint_url=self.endpoint_url or _env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            region=self.region or _env("AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1",
            access_key_id=self.access_key_id or _env("AWS_ACCESS_KEY_ID"),
            secret_access_key=secret or _env("AWS_SECRET_ACCESS_KEY"),
            session_token=_env("AWS_SESSION_TOKEN"),
        )


@dataclass(frozen=True)
class ResolvedS3:
    endpoint_url: str | None
    region: str
    access_key_id: str | None
    secret_access_key: str | None = field(repr=False)  # never in a repr, a log line or a test failure
    session_token: str | None = field(repr=False)


@dataclass(frozen=True)
class Location:
    """A parsed URI: ``scheme`` is ``"file"`` (with an absolute ``path``) or ``"s3"`` (``bucket`` + ``key``)."""

    scheme: str
    path: str = ""
    bucket: str = ""
    key: str = ""


def parse_uri(uri: str) -> Location:
    """Parse a local path, ``file://`` or ``s3://bucket/key`` URI; anything else is a :class:`StorageError`."""
    if not isinstance(uri, str) or not uri.strip():
        raise StorageError(f"empty storage URI {uri!r}; expected one of {', '.join(SUPPORTED_SCHEMES)}")
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StorageError(f"S3 URI {uri!r} has no bucket (expected s3://bucket/key)")
        return Location(scheme="s3", bucket=parsed.netloc, key=parsed.path.lstrip("/"))
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StorageError(f"file URI {uri!r} names host {parsed.netloc!r}; only local files are supported")
        return Location(scheme="file", path=unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Location(scheme="file", path=str(Path(uri).expanduser().absolute()))
    raise StorageError(f"unsupported URI scheme {parsed.scheme!r} in {uri!r}; supported: {', '.join(SUPPORTED_SCHEMES)}")


def join_uri(base: str, *parts: str) -> str:
    """Join path segments onto a URI or path with ``/``."""
    joined = base.rstrip("/")
    for part in parts:
        joined = f"{joined}/{part.strip('/')}"
    return joined


URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # two letters or more: never a Windows drive


def absolute_uri(uri: str | None) -> str | None:
    """A local path made absolute (so Ray workers with other working directories find it); URIs unchanged,
    including those without ``//`` (``mlflow-artifacts:/prefix``, an MLflow server's proxied root; ``file:/abs/path``)."""
    return uri if uri is None or URI_SCHEME.match(uri) else str(Path(uri).expanduser().resolve())


def absolute_tracking_uri(uri: str) -> str:
    """An MLflow ``sqlite:///relative/file.db`` made absolute like :func:`absolute_uri`; other URIs unchanged."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    return uri


def is_hidden(name: str) -> bool:
    """Names starting with ``.`` or ``_`` are temp files / markers, never listed as objects."""
    return name.startswith((".", "_"))


class Storage:
    """Read, write, list and check objects behind local paths, ``file://`` and ``s3://`` URIs.

    Picklable (the boto3 client is created lazily per process), so Ray tasks and actors can carry it.
    """

    def __init__(self, config: StorageConfig | None = None) -> None:
        self.config = config or StorageConfig()
        self._s3_client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "_s3_client": None}

    def for_new_process(self) -> Storage:
        """The same storage without this process's client: for a forked process (a DataLoader worker), which must
        not share the parent's connections."""
        return Storage(self.config)

    # -- S3 plumbing -------------------------------------------------------------------------------

    def _s3(self) -> Any:
        if self._s3_client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            settings = self.config.resolved()
            self._s3_client = boto3.client(
                "s3",
                endpoint_url=settings.endpoint_url,
                region_name=settings.region,
                aws_access_key_id=settings.access_key_id,
                aws_secret_access_key=settings.secret_access_key,
                aws_session_token=settings.session_token,
                config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}),
            )
        return self._s3_client

    @staticmethod
    def _is_missing(error: Exception) -> bool:
        code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
        return code in ("404", "NoSuchKey", "NotFound")

    def _object_error(self, error: Exception, uri: str, verb: str) -> StorageError:
        """An S3 failure on one object as our error: :class:`ObjectNotFound` when it is missing, else :class:`StorageError`."""
        if self._is_missing(error):
            return ObjectNotFound(f"no object at {uri!r}")
        return StorageError(f"{verb} {uri!r} failed: {error}")

    # -- operations --------------------------------------------------------------------------------

    def read_bytes(self, uri: str) -> bytes:
        """The whole object at ``uri``; :class:`ObjectNotFound` if there is none."""
        location = parse_uri(uri)
        if location.scheme == "file":
            try:
                return Path(location.path).read_bytes()
            except FileNotFoundError:
                raise ObjectNotFound(f"no object at {uri!r}") from None
            except IsADirectoryError:
                raise StorageError(f"{uri!r} is a directory, not an object") from None
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._s3().get_object(Bucket=location.bucket, Key=location.key)
            return response["Body"].read()
        except (ClientError, BotoCoreError) as error:
            raise self._object_error(error, uri, "reading") from error

    def local_path_or_bytes(self, uri: str) -> str | bytes:
        """What a file reader that seeks (PyAV) should open: the path of a local file, else the object's bytes."""
        location = parse_uri(uri)
        return location.path if location.scheme == "file" else self.read_bytes(uri)

    def read_text(self, uri: str) -> str:
        return self.read_bytes(uri).decode("utf-8")

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write ``data`` to ``uri`` atomically (creating parent folders for local paths)."""
        location = parse_uri(uri)
        if location.scheme == "file":
            target = Path(location.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            try:
                os.fchmod(handle, 0o666 & ~process_umask())  # mkstemp's 0600 would make every output private to its writer
                with os.fdopen(handle, "wb") as temp_file:
                    temp_file.write(data)
                    temp_file.flush()
                    os.fsync(temp_file.fileno())
                os.replace(temp_name, target)
            except BaseException:
                Path(temp_name).unlink(missing_ok=True)
                raise
            return
        if not location.key or location.key.endswith("/"):
            raise StorageError(f"cannot write to {uri!r}: it names a prefix, not an object")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3().put_object(Bucket=location.bucket, Key=location.key, Body=data)
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"writing {uri!r} failed: {error}") from error

    def write_text(self, uri: str, text: str) -> None:
        self.write_bytes(uri, text.encode("utf-8"))

    def delete(self, uri: str) -> None:
        """Remove the object at ``uri`` (no error if there is none)."""
        location = parse_uri(uri)
        if location.scheme == "file":
            Path(location.path).unlink(missing_ok=True)
            return
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3().delete_object(Bucket=location.bucket, Key=location.key)
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"deleting {uri!r} failed: {error}") from error

    def exists(self, uri: str) -> bool:
        """Whether an object (not a folder) exists at ``uri``."""
        location = parse_uri(uri)
        if location.scheme == "file":
            return Path(location.path).is_file()
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3().head_object(Bucket=location.bucket, Key=location.key)
            return True
        except ClientError as error:
            if self._is_missing(error):
                return False
            raise StorageError(f"checking {uri!r} failed: {error}") from error
        except BotoCoreError as error:
            raise StorageError(f"checking {uri!r} failed: {error}") from error

    def list(self, prefix: str, suffixes: tuple[str, ...] = ()) -> list[str]:
        """Sorted URIs of every object under the folder ``prefix`` (recursively).

        Hidden names (starting with ``.`` or ``_``: temp files, markers) are skipped; ``suffixes``
        (case-insensitive, e.g. ``(".mp4", ".mkv")``) filters by ending. URIs come back in the
        same form as ``prefix`` (local path, ``file://`` or ``s3://``).
        """
        location = parse_uri(prefix)
        wanted = tuple(suffix.lower() for suffix in suffixes)

        def keep(name: str) -> bool:
            return not is_hidden(name.rsplit("/", 1)[-1]) and (not wanted or name.lower().endswith(wanted))

        if location.scheme == "file":
            root = Path(location.path)
            if not root.exists():
                raise ObjectNotFound(f"no folder at {prefix!r}")
            if root.is_file():
                raise StorageError(f"{prefix!r} is a file; list() takes a folder")
            relative = sorted(
                path.relative_to(root).as_posix()
                for path in root.rglob("*")
                if path.is_file() and not any(is_hidden(part) for part in path.relative_to(root).parts)
            )
            return [join_uri(prefix, name) for name in relative if keep(name)]
        from botocore.exceptions import BotoCoreError, ClientError

        key_prefix = location.key.rstrip("/") + "/" if location.key else ""
        names: list[str] = []
        try:
            paginator = self._s3().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=location.bucket, Prefix=key_prefix):
                for item in page.get("Contents", []):
                    relative = item["Key"][len(key_prefix):]
                    if relative and not any(is_hidden(part) for part in relative.split("/")):
                        names.append(relative)
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"listing {prefix!r} failed: {error}") from error
        return [join_uri(prefix, name) for name in sorted(names) if keep(name)]

    def download(self, uri: str, path: str | Path) -> None:
        """Copy the object at ``uri`` to the local file ``path``, streamed (multipart on S3: model shards are GBs)."""
        location = parse_uri(uri)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if location.scheme == "file":
            import shutil

            shutil.copyfile(location.path, path)
            return
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3().download_file(location.bucket, location.key, str(path))
        except (ClientError, BotoCoreError) as error:
            raise self._object_error(error, uri, "downloading") from error

    def check_writable(self, uri: str, what: str, folder: bool) -> None:
        """Fail now, before any work is paid for, if ``uri`` cannot take an output: ``what`` names the setting
        in the message. Locally: a file where a folder is wanted (or the reverse), a parent that is a file,
        no write permission. On S3: a bucket that does not exist or cannot be reached."""
        location = parse_uri(uri)
        if location.scheme == "s3":
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                self._s3().head_bucket(Bucket=location.bucket)
            except (ClientError, BotoCoreError) as error:
                raise StorageError(f"{what} = {uri!r}: bucket {location.bucket!r} cannot be used ({error})") from None
            return
        target = Path(location.path)
        if folder and target.exists() and not target.is_dir():
            raise StorageError(f"{what} = {uri!r} is an existing file; it must be a folder (or not exist yet)")
        if not folder and target.is_dir():
            raise StorageError(f"{what} = {uri!r} is an existing folder; it must be a file path")
        parent = target if folder and target.exists() else target.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise StorageError(f"{what} = {uri!r}: {str(parent)!r} is a file, so nothing can be created under it")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise StorageError(f"{what} = {uri!r}: no permission to write in {str(parent)!r}")

    def arrow_filesystem(self, uri: str) -> tuple[pafs.FileSystem, str]:
        """``(filesystem, path)`` for ``pyarrow`` / Ray Data (``read_parquet(path, filesystem=fs)``)."""
        location = parse_uri(uri)
        if location.scheme == "file":
            return pafs.LocalFileSystem(), location.path
        settings = self.config.resolved()
        options: dict[str, Any] = {"region": settings.region}
        if settings.endpoint_url:
            endpoint = urlparse(settings.endpoint_url)
            options["endpoint_override"] = endpoint.netloc or endpoint.path
            options["scheme"] = endpoint.scheme or "https"
        if settings.access_key_id and settings.secret_access_key:
            options.update(
                access_key=settings.access_key_id,
                secret_key=settings.secret_access_key,
                session_token=settings.session_token,
            )
        return pafs.S3FileSystem(**options), f"{location.bucket}/{location.key}".rstrip("/")
