"""The exception tree. Every error assetbuild raises is one of these::

    AssetbuildError
    ├── UserError                 the user must change something; the CLI exits 2
    │   ├── ManifestError         assetbuild.toml is wrong: carries file, line and key
    │   └── UsageError            a command-line argument is wrong (unknown target, bad flag value)
    ├── BudgetError               the build's estimate exceeds max_cost (exit 2, nothing was sent)
    ├── ProviderError             a provider could not make an image; carries any images it did return
    │   ├── ProviderUnavailable   connection errors, timeouts, 5xx, 429 after retries: a fallback may take over
    │   ├── ProviderRefused       a content-policy refusal: never retried, never falls back
    │   ├── ProviderRequestError  any other 4xx (bad key, bad field, no credit): never retried
    │   └── Interrupted           Ctrl-C: the provider stopped waiting; a job in flight stays saved
    ├── BuildInterrupted          Ctrl-C stopped a build; what was in flight (the CLI exits 130)
    ├── LockfileError             assetbuild.lock cannot be read
    └── CacheError                the cache cannot be read or written

Foreign exceptions (httpx, tomllib, pydantic, PIL, diskcache) are caught in the module that
imports the library and re-raised as one of these ``from`` the original.
"""

from __future__ import annotations


class AssetbuildError(Exception):
    """Base of every assetbuild error."""


class UserError(AssetbuildError):
    """Something the user must fix; the CLI prints one line and exits 2."""


class ManifestError(UserError):
    """A problem in the manifest, located by file, line and key."""

    def __init__(self, message: str, *, file: str = "", line: int | None = None, key: str = ""):
        self.file = file
        self.line = line
        self.key = key
        self.detail = message
        where = file
        if file and line:
            where = f"{file}:{line}"
        parts = [p for p in (where, key) if p]
        super().__init__(": ".join(parts + [message]))


class UsageError(UserError):
    """A command-line argument is wrong."""


class BudgetError(UserError):
    """The estimated cost exceeds the budget; nothing was sent."""


class ProviderError(AssetbuildError):
    """A provider failed to produce an asset.

    ``images`` holds whatever the provider did return before failing (a partial batch), so
    the executor can cache it: an image that was paid for is never lost.

    ``submitted`` is True when the host may already have accepted (and billed) the job: the
    executor then never falls back to another host for it. ``job_key`` names a saved job that
    reached its end: the executor forgets it once ``images`` are safe in the cache (None: the
    job stays saved, so a rerun resumes it).
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        code: str | None = None,
        status: int | None = None,
        images: tuple[bytes, ...] = (),
        submitted: bool = False,
        job_key: str | None = None,
    ):
        self.provider = provider
        self.detail = message
        self.code = code
        self.status = status
        self.images = images
        self.submitted = submitted
        self.job_key = job_key
        prefix = f"{provider}: " if provider else ""
        suffix = f" [{code}]" if code else ""
        super().__init__(f"{prefix}{message}{suffix}")


class ProviderUnavailable(ProviderError):
    """The host could not be reached or kept failing (5xx, 429, timeouts) after retries."""

    retryable = True


class ProviderRefused(ProviderError):
    """The host refused the content (moderation). Not retried, no fallback."""


class ProviderRequestError(ProviderError):
    """The host rejected the request (4xx other than 429). Not retried, no fallback."""


class Interrupted(ProviderError):
    """The build was interrupted (Ctrl-C) while this provider worked: it stopped waiting at
    once. A job the host accepted stays saved, so a rerun resumes it without paying again."""


class BuildInterrupted(AssetbuildError):
    """Ctrl-C stopped a build: nothing new was started, and the assets in flight were waited
    for (``abandoned``: a second Ctrl-C stopped the wait)."""

    def __init__(self, in_flight: list[str], *, abandoned: bool = False):
        self.in_flight = in_flight
        self.abandoned = abandoned
        names = ", ".join(in_flight)
        if abandoned:
            message = (f"interrupted twice: stopped without waiting for {names}; a job a host accepted stays "
                       "saved and a rerun resumes it, but a synchronous request (modelark, volcengine) that "
                       "was under way may have been billed")
        elif in_flight:
            message = (f"interrupted; {len(in_flight)} asset(s) were in flight ({names}): jobs the hosts accepted "
                       "stay saved and a rerun resumes them without paying again; everything finished is kept")
        else:
            message = "interrupted; everything finished so far is kept (rerun to continue)"
        super().__init__(message)


class LockfileError(AssetbuildError):
    """assetbuild.lock is unreadable or of an unknown version."""


class CacheError(AssetbuildError):
    """The cache could not be read or written."""
