from collections.abc import Callable
from typing import Any, TypeVar

from kazoo.exceptions import KazooException

_T = TypeVar("_T")

class RetryFailedError(KazooException): ...

class KazooRetry:
    def __init__(
        self,
        max_tries: int = ...,
        delay: float = ...,
        backoff: float = ...,
        max_jitter: float = ...,
        max_delay: float = ...,
        ignore_expire: bool = ...,
        **kwargs: Any,
    ) -> None: ...
    def copy(self) -> KazooRetry: ...
    def __call__(self, func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T: ...
