"""Entry point of the zygote: ``python -I -S -B .../bootstrap.py PACKAGE_ROOT LIBRARY_ROOT CONTROL_FD SETTINGS``.

``PACKAGE_ROOT`` holds ``ftrl_gym/sandbox`` and ``LIBRARY_ROOT`` holds ``RestrictedPython`` (inside the OS
boundary both are ``/opt/ftrl-sandbox``, bound read-only). The package ``__init__`` modules are not run
(they import the whole library, gymnasium included): the zygote imports only the sandbox's own modules,
its allowed standard-library modules and RestrictedPython, all before any episode process is forked.
"""

import json
import sys
import types

if __name__ == "__main__":
    del sys.path[0]  # this script's directory: its modules must not shadow the standard library
    sys.path[:0] = list(dict.fromkeys(sys.argv[1:3]))
    for _name in ("ftrl_gym", "ftrl_gym.sandbox"):
        _package = types.ModuleType(_name)
        _package.__path__ = [sys.argv[1] + "/" + _name.replace(".", "/")]
        sys.modules[_name] = _package
    from ftrl_gym.sandbox.zygote import main

    main(int(sys.argv[3]), json.loads(sys.argv[4]))
