import pytest

from era_s7.data import DEFAULT_ROOT, load_mnist


@pytest.fixture(scope="session")
def mnist():
    """The real, verified MNIST (`make test` fetches it first), on the CPU."""
    return load_mnist(DEFAULT_ROOT, device="cpu")


@pytest.fixture
def tiny_data(mnist):
    """A small slice of real MNIST: 2,000 training and 500 test images."""
    return dict(x_train=mnist["x_train"][:2000], y_train=mnist["y_train"][:2000],
                x_test=mnist["x_test"][:500], y_test=mnist["y_test"][:500])


# pyproject.toml's markers, given here by what a test uses, so that a new test of a kind is marked without a
# decorator: `pytest -m "not slow"` runs the quick ones, `-m browser` the web demo's page
BROWSER_FIXTURES = {"browser", "demo"}  # tests/test_web.py: Chromium, driven by playwright
NOTEBOOK_RUNS = {"test_smoke_run_end_to_end", "test_failing_cell_leaves_committed_notebook_and_results_unchanged",
                 "test_setup_cell_installs_the_package_once_and_survives_a_rerun_and_a_restart",
                 "test_setup_cell_offline_outside_a_clone_says_what_failed_and_the_fix_in_one_line",
                 "test_setup_cell_on_a_runtime_with_a_too_old_torch_names_it_and_installs_nothing"}
SLOW_FIXTURES = {"mnist"}  # the real data set: what uses it trains or scores on it


def pytest_collection_modifyitems(items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        if getattr(item, "originalname", item.name) in NOTEBOOK_RUNS:
            item.add_marker(pytest.mark.notebook)
        if fixtures & (SLOW_FIXTURES | BROWSER_FIXTURES) or item.get_closest_marker("notebook"):
            item.add_marker(pytest.mark.slow)
