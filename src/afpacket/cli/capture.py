"""`afpacket capture` and `afpacket list`: placeholder while the RX work lands."""
