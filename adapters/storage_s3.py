"""S3 object storage through boto3, with the blocking calls run in a small thread pool."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, Literal, TypeVar
from urllib.parse import quote

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from adapters.interfaces import ObjectInfo, ObjectNotFound

log = logging.getLogger(__name__)

T = TypeVar("T")

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
# Codes a server answers for an API it does not implement; those degrade to a warning at start-up.
_UNSUPPORTED = frozenset({"NotImplemented", "MethodNotAllowed", "501", "405", "InvalidRequest", "MalformedXML"})
_DELETE_BATCH = 1000  # the DeleteObjects maximum


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def content_disposition(filename: str) -> str:
    """An attachment header that survives non-ASCII names (RFC 6266 / 5987)."""
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "").replace("\\", "")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


class S3Storage:
    """Objects in one S3 bucket.

    Credentials, endpoint and region come from the arguments or, when None, from boto3's usual sources
    (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, profiles). `public_endpoint_url`
    signs presigned URLs for the host clients see (e.g. behind a proxy) while the service talks to
    `endpoint_url`.
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        path_style: bool | None = None,
        photo_retention_days: int = 0,
        audio_retention_days: int = 0,
        max_workers: int = 8,
        chunk_size: int = 256 * 1024,
    ) -> None:
        if not bucket:
            raise ValueError("S3Storage needs a bucket name")
        self.bucket = bucket
        self.photo_retention_days = photo_retention_days
        self.audio_retention_days = audio_retention_days
        self.chunk_size = chunk_size
        style: Literal["auto", "virtual", "path"] = (
            "auto" if path_style is None else ("path" if path_style else "virtual")
        )
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": style},
            max_pool_connections=max_workers,
            retries={"mode": "standard", "max_attempts": 3},
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        self._client = session.client("s3", endpoint_url=endpoint_url, config=config)
        self._signer = (
            session.client("s3", endpoint_url=public_endpoint_url, config=config)
            if public_endpoint_url
            else self._client
        )
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="s3")

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def _call(self, key: str | None, fn: Callable[..., T], **kwargs: Any) -> T:
        """Run one client call off the loop, translating a missing key into ObjectNotFound."""
        try:
            return await self._run(fn, **kwargs)
        except ClientError as exc:
            if key is not None and _code(exc) in _NOT_FOUND:
                raise ObjectNotFound(key) from exc
            raise

    # -- start-up ---------------------------------------------------------------------------------

    async def ensure_ready(self) -> None:
        """Create the bucket if missing, then apply lifecycle rules and the deny-anonymous policy."""
        await self._run(self._ensure_bucket)
        await self._apply("lifecycle rules", self._apply_lifecycle)
        await self._apply("public access block", self._apply_public_access_block)
        await self._apply("bucket policy", self._apply_policy)

    def _ensure_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
        region = self._client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(**kwargs)
            log.info("created bucket %s", self.bucket)
        except ClientError as exc:
            if _code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    async def _apply(self, what: str, fn: Callable[[], None]) -> None:
        try:
            await self._run(fn)
        except ClientError as exc:
            if _code(exc) not in _UNSUPPORTED:
                raise
            log.warning("S3 server does not support %s (%s); continuing without them", what, _code(exc))

    def lifecycle_rules(self) -> list[dict[str, Any]]:
        """Expiration rules for the configured retention (0 days disables a rule)."""
        rules = []
        for prefix, days in (("photos/", self.photo_retention_days), ("audio/", self.audio_retention_days)):
            if days > 0:
                rules.append({
                    "ID": f"expire-{prefix.rstrip('/')}",
                    "Filter": {"Prefix": prefix},
                    "Status": "Enabled",
                    "Expiration": {"Days": days},
                })
        return rules

    def _apply_lifecycle(self) -> None:
        rules = self.lifecycle_rules()
        if rules:
            self._client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": rules}  # type: ignore[typeddict-item]
            )
            return
        # Retention turned off: remove rules an earlier configuration left behind.
        try:
            self._client.delete_bucket_lifecycle(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) != "NoSuchLifecycleConfiguration":
                raise

    def _apply_public_access_block(self) -> None:
        """AWS's own switch against public ACLs and policies (SeaweedFS answers NotImplemented)."""
        self._client.put_public_access_block(
            Bucket=self.bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True,
                "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
            },
        )

    def policy(self) -> dict[str, Any]:
        """Deny every request that carries no credentials; signed and presigned requests are unaffected.

        AWS evaluates aws:PrincipalType=Anonymous. SeaweedFS stores the policy but does not set that key
        for anonymous requests, so there the default (no anonymous access while keys are configured) is
        what denies them; the tests check the outcome, a 403.
        """
        arn = f"arn:aws:s3:::{self.bucket}"
        return {
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "DenyAnonymous",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"StringEquals": {"aws:PrincipalType": "Anonymous"}},
            }],
        }

    def _apply_policy(self) -> None:
        self._client.put_bucket_policy(Bucket=self.bucket, Policy=json.dumps(self.policy()))

    # -- objects ----------------------------------------------------------------------------------

    async def put(self, key: str, data: bytes | BinaryIO, *, content_type: str) -> ObjectInfo:
        if isinstance(data, bytes | bytearray | memoryview):
            body = bytes(data)
            result = await self._run(
                self._client.put_object, Bucket=self.bucket, Key=key, Body=body, ContentType=content_type
            )
            return ObjectInfo(key, len(body), content_type, result["ETag"].strip('"'))
        # File objects go through the transfer manager, which switches to multipart for large bodies.
        await self._run(
            self._client.upload_fileobj, data, self.bucket, key, ExtraArgs={"ContentType": content_type}
        )
        return await self.head(key)

    async def get(self, key: str) -> bytes:
        def read() -> bytes:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            with response["Body"] as body:
                return body.read()

        return await self._call(key, read)

    async def head(self, key: str) -> ObjectInfo:
        response = await self._call(key, self._client.head_object, Bucket=self.bucket, Key=key)
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            content_type=response.get("ContentType") or "application/octet-stream",
            etag=response["ETag"].strip('"'),
        )

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Stream bytes [start, end] inclusive; each chunk is read in the pool."""
        if start < 0 or end < start:
            raise ValueError(f"invalid range {start}-{end}")
        response = await self._call(
            key, self._client.get_object, Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end}"
        )
        body = response["Body"]
        chunks = body.iter_chunks(self.chunk_size)
        try:
            while True:
                chunk = await self._run(next, chunks, b"")
                if not chunk:
                    break
                yield chunk
        finally:
            await self._run(body.close)

    async def delete(self, *keys: str) -> None:
        for i in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": k} for k in keys[i : i + _DELETE_BATCH]]
            response = await self._run(
                self._client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": batch, "Quiet": True},
            )
            errors = [e for e in response.get("Errors", []) if e.get("Code") not in _NOT_FOUND]
            if errors:
                raise RuntimeError(f"S3 delete failed for {len(errors)} key(s): {errors[:3]}")

    async def presign_put(self, key: str, *, content_type: str, byte_size: int, expires: int) -> str:
        """Content-Type and Content-Length are signed: the client must send exactly these."""
        params = {"Bucket": self.bucket, "Key": key, "ContentType": content_type, "ContentLength": byte_size}
        return await self._run(
            self._signer.generate_presigned_url, "put_object", Params=params, ExpiresIn=expires
        )

    async def presign_get(
        self, key: str, *, expires: int, filename: str | None = None, content_type: str | None = None
    ) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        if content_type:
            params["ResponseContentType"] = content_type
        return await self._run(
            self._signer.generate_presigned_url, "get_object", Params=params, ExpiresIn=expires
        )

    async def ping(self) -> None:
        await self._run(self._client.head_bucket, Bucket=self.bucket)

    async def close(self) -> None:
        await self._run(self._client.close)
        if self._signer is not self._client:
            await self._run(self._signer.close)
        self._executor.shutdown(wait=False)
