"""Channel feeds: which records a shop may publish, and the files Google, Shopify and JSONL readers take.

Pure rules (no AWS SDK): ``selection`` (exportable or why not), ``text`` (cleaning and word-boundary
cuts), ``taxonomy`` (catalogue category -> Google and Shopify categories), ``formats`` (one row per
product, then the whole file). ``describer export`` and the FeedExport Lambda both render through here.
"""
