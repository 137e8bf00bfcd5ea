"""A page's content: its main Markdown (markdown), cut into chunks (chunks), the items
it states itself (structured, fields), and what the local model extracts from it (extract,
checked against a JSON Schema subset: schema)."""
