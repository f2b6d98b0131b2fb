"""Entry point of a worker process: ``python -s -B .../sandbox/bootstrap.py PACKAGE_ROOT SETTINGS_JSON``.

Like ``python -m ftrl_gym.sandbox.worker``, but without running the package ``__init__`` modules (which
import the whole library, gymnasium included): a worker imports only the sandbox's own modules.
"""

import sys
import types

if __name__ == "__main__":
    del sys.path[0]  # this script's directory: its modules must not shadow the standard library
    for _name in ("ftrl_gym", "ftrl_gym.sandbox"):
        _package = types.ModuleType(_name)
        _package.__path__ = [sys.argv[1] + "/" + _name.replace(".", "/")]
        sys.modules[_name] = _package
    from ftrl_gym.sandbox.worker import main

    main(sys.argv[2])
