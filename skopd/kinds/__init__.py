"""Job kinds besides Skop's documents: what the other API faces submit, and how each runs
on the one crawl engine."""
