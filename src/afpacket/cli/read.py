"""`afpacket read`: placeholder, replaced by the savefile work."""
