"""One error tree for everything that can be wrong with a message on the wire.

The backend routes every :class:`ContractError` to its dead-letter table using ``reason``; nothing in
here ever needs a traceback to be understood.
"""


class ContractError(ValueError):
    """A message or topic that does not follow the contract.

    ``reason`` is a one-line, human-readable explanation naming the field at fault.
    """

    code = "contract"

    def __init__(self, reason: str, *, topic: str | None = None) -> None:
        self.reason = reason
        self.topic = topic
        where = f"{topic}: " if topic else ""
        super().__init__(f"{where}{reason}")


class TopicError(ContractError):
    """The topic does not have the contract's shape."""

    code = "bad_topic"


class MalformedMessage(ContractError):
    """The payload is not valid JSON or does not match the message model."""

    code = "malformed"


class UnsupportedVersion(ContractError):
    """The payload carries a contract version this software does not speak."""

    code = "unsupported_version"
