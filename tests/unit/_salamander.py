"""Builds a real AES-GCM "invisible salamander": one ciphertext that authenticates
under two different keys (Dodis, Grubbs, Ristenpart, Woodage, CRYPTO 2018).

GCM's tag is linear in the ciphertext blocks over GF(2^128), so fixing all blocks but
one and solving for it makes the tags under both keys equal. Test-only code: it attacks
Covey's attachment format to show the franking binds the key.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_R = 0xE1 << 120


def _gf_mult(x: int, y: int) -> int:
    """Multiplication in GCM's GF(2^128) (NIST SP 800-38D, algorithm 1)."""
    z, v = 0, y
    for i in range(127, -1, -1):
        if (x >> i) & 1:
            z ^= v
        v = (v >> 1) ^ _R if v & 1 else v >> 1
    return z


def _gf_pow(x: int, e: int) -> int:
    result = 1 << 127  # the field's one, in GCM bit order
    while e:
        if e & 1:
            result = _gf_mult(result, x)
        x = _gf_mult(x, x)
        e >>= 1
    return result


def _gf_inv(x: int) -> int:
    return _gf_pow(x, (1 << 128) - 2)


def _aes_block(key: bytes, block: bytes) -> int:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return int.from_bytes(enc.update(block) + enc.finalize(), "big")


def _blocks(data: bytes) -> list[int]:
    data += b"\x00" * (-len(data) % 16)
    return [int.from_bytes(data[i : i + 16], "big") for i in range(0, len(data), 16)]


def _ghash(h: int, aad: bytes, ct: bytes) -> int:
    length = ((len(aad) * 8) << 64) | (len(ct) * 8)
    x = 0
    for block in [*_blocks(aad), *_blocks(ct), length]:
        x = _gf_mult(x ^ block, h)
    return x


def two_key_ciphertext(
    key1: bytes, key2: bytes, nonce: bytes, aad: bytes, n_blocks: int = 4
) -> bytes:
    """Return `ciphertext ‖ tag` that AES-GCM accepts under both `key1` and `key2`."""
    assert len(nonce) == 12 and n_blocks >= 1
    j0 = nonce + b"\x00\x00\x00\x01"
    h1, h2 = _aes_block(key1, b"\x00" * 16), _aes_block(key2, b"\x00" * 16)
    e1, e2 = _aes_block(key1, j0), _aes_block(key2, j0)
    blocks = [int.from_bytes(os.urandom(16), "big") for _ in range(n_blocks)]
    free = n_blocks - 1
    blocks[free] = 0
    ct0 = b"".join(b.to_bytes(16, "big") for b in blocks)
    # Position of the free block in GHASH's sequence decides the power of H it meets.
    total = len(_blocks(aad)) + n_blocks + 1
    exponent = total - (len(_blocks(aad)) + free)
    coefficient = _gf_pow(h1, exponent) ^ _gf_pow(h2, exponent)
    rhs = e1 ^ e2 ^ _ghash(h1, aad, ct0) ^ _ghash(h2, aad, ct0)
    blocks[free] = _gf_mult(rhs, _gf_inv(coefficient))
    ct = b"".join(b.to_bytes(16, "big") for b in blocks)
    tag = e1 ^ _ghash(h1, aad, ct)
    return ct + tag.to_bytes(16, "big")
