"""llama.cpp's OpenAI-compatible server, started so that it survives Intel AMX CPUs.

`python -m prism_agent.models.llamacpp_server --model FILE.gguf --model_alias NAME ...` takes exactly
the arguments of `python -m llama_cpp.server` and runs it, with one change: llama.cpp's extra weight
buffer types (AMX tiles, CPU repacking) are turned off. On Sapphire-Rapids-class CPUs (`amx_int8` in
/proc/cpuinfo) llama.cpp repacks quantised weights into an AMX buffer, and the first prompt longer
than one token then dies with SIGSEGV in `ggml_backend_amx_mul_mat` (ggml-org/llama.cpp#20824, open,
unfixed in llama-cpp-python 0.3.36; measured here: `/v1/models` answers, the first chat request kills
the server). The server has no option for it, so the default model parameters are wrapped before it
loads the model. Weights stay in the plain CPU buffer, which is what every non-AMX machine runs anyway
for our Q4_1 GGUF (it has no repacked kernels).
"""

from __future__ import annotations

import sys


def disable_extra_buffer_types() -> bool:
    """Make every model llama_cpp loads from now on skip extra buffer types. False when this build of
    llama_cpp has no such parameter (older builds have no AMX buffer either)."""
    import llama_cpp.llama as llama_module

    lib = llama_module.llama_cpp
    default = lib.llama_model_default_params
    if getattr(default, "_prism_no_extra_bufts", False):
        return True
    if not hasattr(default(), "use_extra_bufts"):
        return False

    def params():
        p = default()
        p.use_extra_bufts = False
        return p

    params._prism_no_extra_bufts = True  # type: ignore[attr-defined]
    lib.llama_model_default_params = params
    return True


def main(argv: list[str] | None = None) -> None:
    try:
        from llama_cpp.server.__main__ import main as server_main
    except ImportError:
        sys.exit("error: llama.cpp's server is not installed: pip install 'prism-agent[llamacpp]'")
    disable_extra_buffer_types()
    sys.argv = [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
    server_main()


if __name__ == "__main__":
    main()
