"""The `fields` query parameter: partial responses, as every Google JSON API
takes it ("Performance tips: partial response").

Syntax: a comma-separated list of field paths; `a/b` selects b inside a;
`a(b,c)` selects b and c inside a; `*` selects every field at its level.
Inside an array the selection applies to each element. Names that the
resource does not have are a 400 (invalidParameter), checked for the
object and object-list resources, whose fields the reference lists;
metadata keys are free-form.
"""

from common import HttpError

OBJECT_FIELDS = frozenset((
    "kind", "id", "selfLink", "mediaLink", "name", "bucket", "generation", "metageneration",
    "contentType", "storageClass", "size", "md5Hash", "contentEncoding", "contentDisposition",
    "contentLanguage", "cacheControl", "crc32c", "componentCount", "etag", "kmsKeyName",
    "temporaryHold", "eventBasedHold", "retentionExpirationTime", "retention", "timeCreated",
    "updated", "timeDeleted", "timeStorageClassUpdated", "customTime", "metadata", "acl",
    "owner", "customerEncryption", "softDeleteTime", "hardDeleteTime", "restoreToken",
    "timeFinalized", "contexts"))
LIST_FIELDS = frozenset(("kind", "nextPageToken", "prefixes", "items"))

# What each known resource's fields hold: a schema for validation, None = free-form.
SCHEMAS = {
    "storage#object": {f: None for f in OBJECT_FIELDS},
    "storage#objects": {"kind": None, "nextPageToken": None, "prefixes": None,
                        "items": "storage#object"},
}


def _invalid(text):
    return HttpError(400, "Invalid field selection %s" % text, "invalidParameter")


def parse(text):
    """'a,b/c,d(e,f)' -> {"a": {}, "b": {"c": {}}, "d": {"e": {}, "f": {}}}; {} = whole."""
    pos = 0

    def name():
        nonlocal pos
        start = pos
        while pos < len(text) and text[pos] not in ",()/":
            pos += 1
        word = text[start:pos].strip()
        if not word:
            raise _invalid(text)
        return word

    def path(into):
        nonlocal pos
        word = name()
        sub = into.setdefault(word, {})
        if pos < len(text) and text[pos] == "/":
            pos += 1
            path(sub)
        elif pos < len(text) and text[pos] == "(":
            pos += 1
            group(sub)
            if pos >= len(text) or text[pos] != ")":
                raise _invalid(text)
            pos += 1

    def group(into):
        nonlocal pos
        path(into)
        while pos < len(text) and text[pos] == ",":
            pos += 1
            path(into)

    tree = {}
    group(tree)
    if pos != len(text):
        raise _invalid(text)
    return tree


def _check(tree, kind):
    schema = SCHEMAS.get(kind)
    if schema is None:
        return
    for word, sub in tree.items():
        if word == "*":
            continue
        if word not in schema:
            raise _invalid(word)
        if sub and schema[word]:
            _check(sub, schema[word])


def _apply(value, tree):
    if not tree:
        return value
    if isinstance(value, list):
        return [_apply(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    if "*" in tree:
        return {k: _apply(v, tree.get(k) or tree["*"]) for k, v in value.items()}
    return {k: _apply(v, tree[k]) for k, v in value.items() if k in tree}


def select(obj, text):
    """obj reduced to the selection `text`; HttpError 400 when it is not valid."""
    tree = parse(text or "")
    if isinstance(obj, dict):
        _check(tree, obj.get("kind"))
    return _apply(obj, tree)
