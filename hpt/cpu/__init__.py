"""CPU support for running verl's real trainer without accelerators (tests, CI, laptops).

Import nothing here: ``hpt.cpu.platform`` must be imported first and on its own (by ``hpt.plugin``),
before any module that makes verl detect its platform.
"""
