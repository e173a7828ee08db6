"""`afpacket send` and `afpacket gen`: placeholder, replaced by the transmit work."""
