"""The C library, for the calls the os module lacks (fallocate, mallopt)."""

import ctypes
import ctypes.util

LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
