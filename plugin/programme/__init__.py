"""The programme, pure: neutral events in, contributions and lots out. No Flask, HTTP, queue or platform code."""
