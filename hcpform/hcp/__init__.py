"""Everything that knows Housecall Pro: the API client, payload builders and the sandbox."""
