"""Building a layer part from its Keras name or config dict."""


def from_config(identifier, table, kind):
    """``table[name](**config)`` for a name or a ``{"name": ..., **config}`` dict.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.

    Examples
    --------
    >>> from_config({"name": "pair", "a": 1}, {"pair": lambda a: (a, a)}, "thing")
    (1, 1)
    """
    if isinstance(identifier, dict):
        config = dict(identifier)
        name = config.pop("name", None)
    else:
        name, config = identifier, {}
    if not isinstance(name, str) or name not in table:
        raise ValueError(f"unknown {kind} {name!r}; choose one of {sorted(table)}")
    return table[name](**config)
