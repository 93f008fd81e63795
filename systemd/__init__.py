"""The systemd unit templates, shipped as package data: ``assistantd.systemd``.

The repository keeps them here, in ``systemd/`` (the user service and its two sockets) and
``systemd/system/`` (the hardened system-wide units, with the sysusers.d and tmpfiles.d lines
for their user and runtime folder). ``@ASSISTANTD@`` in them stands for the absolute path of the
``assistantd`` program; ``assistantctl service install`` fills it in and writes the files where
systemd looks (``assistantd.ctl.service``). This file only makes the folder a package, so that
an installed ``assistantctl`` finds the templates beside it, wherever pip put them.
"""
