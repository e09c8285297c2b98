"""A Discord attachment as the platform jobs read it (adapters.shared.files.attachments)."""

from __future__ import annotations

import aiohttp
import discord

from adapters.shared.files.attachments import Attachment, DownloadFailed


def attachment(item: discord.Attachment) -> Attachment:
    async def download() -> bytes:
        try:
            return await item.read()
        except (discord.HTTPException, aiohttp.ClientError) as error:
            raise DownloadFailed(f"{type(error).__name__}: {error}") from error

    return Attachment(item.filename, item.content_type or "", item.size, download)
