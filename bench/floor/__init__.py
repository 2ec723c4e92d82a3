"""The floor: a bare DRF view signing the bench's RS256 token (see views.py)."""
