"""Drop each row's image bytes (and small copy) after the other pipelines: the last item pipeline."""

from __future__ import annotations

from medcrawl.items import ImageItem


class ReleaseBodyPipeline:
    """Drop each row's image bytes once every earlier pipeline has used them (keeps memory flat)."""

    def process_item(self, item: ImageItem) -> ImageItem:
        if isinstance(item, ImageItem):
            item.body = item.original = item.preview = None
        return item
