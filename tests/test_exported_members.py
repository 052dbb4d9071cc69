import begateway_async as bga
import begateway_async.testing


def test_all_is_the_public_namespace():
    """`__all__` lists exactly the public names of the package."""
    public = {name for name in dir(bga) if not name.startswith("_")}
    public -= {"cli", "testing", "webhooks"}  # the command line, test helpers, webhooks
    assert set(bga.__all__) - {"__version__"} == public


def test_public_names_live_in_the_package():
    """Every exported class reports `begateway_async` as its module."""
    for name in bga.__all__:
        obj = getattr(bga, name)
        if isinstance(obj, type):
            assert obj.__module__ == "begateway_async", name


def test_testing_namespace():
    """The testing helpers are exported by `begateway_async.testing`."""
    for name in begateway_async.testing.__all__:
        assert hasattr(begateway_async.testing, name)
