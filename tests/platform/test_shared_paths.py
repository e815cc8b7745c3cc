from tests.conftest import SHARED_DATA, shared


def test_shared_helper_points_at_the_shared_data_folder():
    assert SHARED_DATA.name == "data" and SHARED_DATA.parent.name == "shared"
    path = shared("README.md")  # skips with a message when ../shared is absent
    assert "licence" in path.read_text().lower()
