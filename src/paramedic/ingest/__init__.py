"""Alert sources: one module per source turns a raw payload into ``list[Alert]``; own probes."""
