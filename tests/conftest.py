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
