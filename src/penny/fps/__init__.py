"""The FPS wire adapter: Amazon FPS Query API requests in, FPS XML responses out.

Pure code with no HTTP framework in it, so every rule is testable without a server:

* :mod:`penny.fps.wire` parses a GET query string or a POST form body into a flat parameter
  dict (with size limits and duplicate detection), knows the supported API versions and actions,
  and renders the FPS success and error envelopes, amounts and dates.
* :mod:`penny.fps.signature` builds the Signature Version 2 string-to-sign and verifies a
  request's signature, key and timestamp.

The decisions behind codes, limits and formats are in ``docs/fps-wire.md``; the protocol
itself is the FPS API reference, §1, §2 and §4.
"""
