from daemon.entry import main

# Guarded: the pre-flight child process (multiprocessing "spawn") imports this
# module again as __mp_main__, and must not start a second daemon.
if __name__ == "__main__":
    raise SystemExit(main())
