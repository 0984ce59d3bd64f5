"""The offline copywriter: what the local model host answers Bedrock `Converse` with when no language
model is configured (``description``: the English description; ``product_copy``: the copy per locale)."""
