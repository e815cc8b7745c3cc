"""One definition per stored hash: the encodings are frozen, so these values are too."""

import hashlib

from xtalbase.platform import hashing


def test_set_hash_is_the_dataset_encoding_and_order_free():
    hashes = ["b" * 64, "a" * 64]
    assert hashing.set_hash(hashes) == hashlib.sha256(("a" * 64 + "\n" + "b" * 64 + "\n").encode()).hexdigest()
    assert hashing.set_hash(reversed(hashes)) == hashing.set_hash(hashes)
    # the encoding models used before 0006 differs for the same set: that is what the migration rewrote
    assert hashing.legacy_set_hash(hashes) != hashing.set_hash(hashes)


def test_canonical_json_and_derived_hashes():
    assert hashing.canonical_json({"b": 1, "a": [1.5, None]}) == b'{"a":[1.5,null],"b":1}'
    assert hashing.membership_hash([("h2", "test"), ("h1", "train")]) == hashlib.sha256(b"h1\ttrain\nh2\ttest\n").hexdigest()
    recipe = {"strategy": "random", "seed": 0}
    assert hashing.split_hash(recipe, "m") == hashlib.sha256(b'{"members":"m","recipe":{"seed":0,"strategy":"random"}}').hexdigest()
    assert hashing.recipe_hash({"radiation": "CuKa", "wavelength": 1.54184}) == hashing.recipe_hash({"wavelength": 1.54184})


def test_file_sha256_reads_in_blocks(tmp_path):
    data = bytes(range(256)) * 9000  # over one 1 MiB block
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert hashing.file_sha256(path) == hashlib.sha256(data).hexdigest() == hashing.sha256_bytes(data)
