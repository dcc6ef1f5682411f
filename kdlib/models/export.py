"""The EOG-only student for deployment: ``torch.export`` of its logits, ``eog -> logits``.

Introduced in ``notebooks/05_evaluation.ipynb`` (section 6: what the student costs).

Training and evaluation use the eager model (it returns features and gates for distillation and
plots). To *run* a trained student only the logits are needed. :func:`export_student` captures
that path as a :class:`torch.export.ExportedProgram`: a graph without Python code, saved with
``torch.export.save`` and loaded with ``torch.export.load`` (no kdlib needed), batch size free.

Run as it is (``program.module()(eog)``), the exported graph is not faster than the eager model
(on the reference 2-core CPU it was slower for one window). What makes the student faster is
compiling that graph ahead of time with AOTInductor, once per trained model (seconds), into a
package that any later process loads and runs without kdlib: there it ran one window about twice
as fast as eager, and batches faster too (measured latencies, throughputs and compile times, with
the machine and the command: ``benchmarks/results/bench_speedups.md``, section "Inference")::

    program = export_student(student)
    path = torch._inductor.aoti_compile_and_package(program, package_path="student.pt2")
    run = torch._inductor.aoti_load_package(path)
    logits = run(eog)                                 # (B, n_eog, T) -> (B, n_classes)

(torch 2.13 itself may print a ``FutureWarning`` about ``LeafSpec`` while compiling: harmless.)
``benchmarks/bench_speedups.py`` measures every route (eager, TorchScript, torch.export,
AOTInductor, torch.compile) and checks their logits against eager. TorchScript
(``torch.jit.trace``) is deprecated in torch 2.13 and ``torch.jit.script`` cannot compile the
model, so kdlib does not use them.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["LogitsOnly", "export_student"]


class LogitsOnly(nn.Module):
    """An EOG-only kdlib model seen as ``eog (B, n_eog, T) -> logits (B, n_classes)``.

    Parameters
    ----------
    model : nn.Module
        A model with ``modalities == ("eog",)``: :class:`~kdlib.models.EOGStudent` or
        :class:`~kdlib.models.EOGOnly`.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        if tuple(getattr(model, "modalities", ())) != ("eog",):
            raise ValueError(f"expected an EOG-only model (modalities ('eog',)), got {type(model).__name__} "
                             f"with modalities {getattr(model, 'modalities', None)}")
        self.model = model

    def forward(self, eog: torch.Tensor) -> torch.Tensor:
        """EOG windows ``(B, n_eog, T)`` -> the wrapped model's logits ``(B, n_classes)``."""
        return self.model(eog=eog).logits  # (B, n_eog, T) -> (B, n_classes)


def export_student(model: nn.Module, example: torch.Tensor | None = None) -> torch.export.ExportedProgram:
    """``torch.export`` of an EOG-only model's logits, for any batch size.

    Parameters
    ----------
    model : nn.Module
        A trained EOG-only model (:class:`~kdlib.models.EOGStudent` or
        :class:`~kdlib.models.EOGOnly`). It is put in eval mode (dropout off, batch-norm running
        statistics), in place.
    example : Tensor (B, n_eog, T), optional
        An example input (``B >= 2``); default: two random windows of the model's config. The
        batch size stays free; the channels and window length are fixed to the example's.

    Returns
    -------
    torch.export.ExportedProgram
        ``program.module()(eog) -> logits (B, n_classes)``, in eval mode. Save it with
        ``torch.export.save``; compile it with AOTInductor for speed (see the module docstring).

    Notes
    -----
    The eager model's checks (channel count, window length) run once, while exporting, for the
    example's shape; the program refuses other shapes. The program returns the logits only: for
    the student's gates (plots), call the eager model and read them from its output
    (:meth:`~kdlib.models.EOGStudent.gate_maps`).
    """
    wrapped = LogitsOnly(model).eval()
    if example is None:
        c = model.config
        device = next(model.parameters()).device
        example = torch.randn(2, c.n_eog, c.n_samples, device=device)  # (2, n_eog, T)
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        return torch.export.export(wrapped, (example,), dynamic_shapes={"eog": {0: batch}})
