"""The dispatcher: Dramatiq workers that turn queued updates into bot replies."""
