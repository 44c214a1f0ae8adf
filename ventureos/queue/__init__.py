"""Feed queue backends (SQS, local SQLite) behind one interface: ``current_queue()``."""

from ventureos.queue.base import BATCH, Depth, FeedQueue, Message, QueueError, current_queue, open_queue

__all__ = ["BATCH", "Depth", "FeedQueue", "Message", "QueueError", "current_queue", "open_queue"]
