"""Nova-shaped source files for analyzer tests: constants among ordinary code."""

from __future__ import annotations

WARNING_CODE = '''

class LibvirtDriver(driver.ComputeDriver):
    """The libvirt compute driver."""

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi)
        self._host = host.Host(self._uri(), read_only)

    def init_host(self, host):
        if not self._host.has_min_version(MIN_LIBVIRT_VERSION):
            raise exception.InternalError(
                _('Nova requires libvirt version %s or greater.') % MIN_LIBVIRT_VERSION)
        if not self._host.has_min_version(NEXT_MIN_LIBVIRT_VERSION):
            LOG.warning('Running Nova with a libvirt version less than '
                        '%(version)s is deprecated. The required minimum '
                        'version of libvirt will be raised to %(version)s '
                        'in the next release.',
                        {'version': NEXT_MIN_LIBVIRT_VERSION})
        if not self._host.has_min_version(hv_ver=NEXT_MIN_QEMU_VERSION):
            LOG.warning('Running Nova with a QEMU version less than %s is deprecated.',
                        NEXT_MIN_QEMU_VERSION)

    def _check_cpu(self, arch):
        if arch in MIN_LIBVIRT_OTHER_ARCH:
            if not self._host.has_min_version(MIN_LIBVIRT_OTHER_ARCH.get(arch)):
                raise exception.InternalError(_('Running on %s needs a newer libvirt') % arch)
'''


def driver(min_libvirt="(1, 2, 1)", next_libvirt="(1, 2, 1)", min_qemu="(1, 5, 3)",
           next_qemu="(1, 5, 3)", extra: str = "", warn: bool = True) -> str:
    """A driver.py; `extra` lands among the constants."""
    head = f'''"""A libvirt connection.

Supports KVM, LXC, QEMU, UML, XEN and Parallels.
"""

import os

from oslo_log import log as logging

from nova.objects import fields
from nova.virt import driver
from nova.virt.libvirt import host

LOG = logging.getLogger(__name__)

# When raising MIN_LIBVIRT_VERSION, also raise NEXT_MIN_LIBVIRT_VERSION.
MIN_LIBVIRT_VERSION = {min_libvirt}
MIN_QEMU_VERSION = {min_qemu}
# Below these, operators get a deprecation warning for one release first.
NEXT_MIN_LIBVIRT_VERSION = {next_libvirt}
NEXT_MIN_QEMU_VERSION = {next_qemu}
{extra}
'''
    body = WARNING_CODE if warn else "\n\ndef unused():\n    return NEXT_MIN_LIBVIRT_VERSION\n"
    return head + body


CONFIG = "preset: openstack-nova\n"


def ocata_bump(repo) -> None:
    """Newton (tag 14.0.0) warned only below 1.2.1; branch `bump` raises the minimum to 1.2.9 (an Ocata change).

    `repo` (a tests.support.gitrepo.GitRepo) is left on `bump`.
    """
    repo.commit({"nova/virt/libvirt/driver.py": driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                date="2016-09-01T10:00:00+00:00")
    repo.tag("14.0.0", date="2016-10-06T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({"nova/virt/libvirt/driver.py": driver("(1, 2, 9)", "(1, 2, 9)")}, date="2016-11-20T10:00:00+00:00")
