#!/usr/bin/env python3
"""Build a Nova-sized git repository with ``git fast-import`` (made, not downloaded).

The repository looks like OpenStack Nova where minbump looks:

* ``main`` with ``--commits`` commits (default 60,000) dated from 2011-09 to
  2025-11, each touching one to three small files among a few thousand paths
  under ``nova/``; about one commit in 400 edits ``nova/virt/libvirt/driver.py``.
* ``nova/virt/libvirt/driver.py``: a ~14,000-line module (imports, the
  ``MIN_*``/``NEXT_MIN_*`` constants among ordinary code, a driver class with
  methods, ``_check_min_version`` that logs a warning below
  ``NEXT_MIN_LIBVIRT_VERSION``). ``--watched N`` sets how many ``MIN_*``
  constants it holds (the real ten, then feature fillers).
* ``--tags`` annotated tags (default 300) named as Nova tags them and dated on
  the OpenStack release dates of ``policy/calendars/openstack.yaml``: the
  series tag (``2013.1`` ... ``2015.1.0``, ``12.0.0`` ... ``32.0.0``) plus
  milestones and release candidates on ``main`` and point releases on
  ``stable/<series>`` branches.
* ``.github/minbump.yml`` with ``preset: openstack-nova``.
* branch ``bump``: one commit on top of ``main``, dated 2025-11-20 (after
  32.0.0, so the target release is 2026.1 Gazpacho and the previous one is
  32.0.0 Flamingo), raising ``MIN_LIBVIRT_VERSION`` to (8, 0, 0) and
  ``MIN_QEMU_VERSION`` to (6, 2, 0); ``NEXT_MIN_*`` have been (8, 0, 0) /
  (6, 2, 0) since mid-2023, so every tag since 28.0.0 carries the warning.

A small JSON file ``.git/minbump-bench.json`` records what the benchmarks
need (refs, previous release tag, watched paths, build time).

    python bench/make_repo.py OUT_DIR [--commits 60000] [--watched 10] [--tags 300]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

GENERATOR_VERSION = 3  # bump when the output changes, so cached fixtures are rebuilt

DRIVER = "nova/virt/libvirt/driver.py"
CONFIG = ".github/minbump.yml"
WATCH_GLOB_DIR = "nova/virt/libvirt/"  # the preset watches nova/virt/libvirt/*.py

# Nova's series tags and OpenStack release dates (policy/calendars/openstack.yaml),
# up to the last release before the bump commit.
RELEASES = [
    ("essex", "2012.1", "2012-04-05"),
    ("folsom", "2012.2", "2012-09-27"),
    ("grizzly", "2013.1", "2013-04-04"),
    ("havana", "2013.2", "2013-10-17"),
    ("icehouse", "2014.1", "2014-04-17"),
    ("juno", "2014.2", "2014-10-16"),
    ("kilo", "2015.1.0", "2015-04-30"),
    ("liberty", "12.0.0", "2015-10-15"),
    ("mitaka", "13.0.0", "2016-04-07"),
    ("newton", "14.0.0", "2016-10-06"),
    ("ocata", "15.0.0", "2017-02-22"),
    ("pike", "16.0.0", "2017-08-30"),
    ("queens", "17.0.0", "2018-02-28"),
    ("rocky", "18.0.0", "2018-08-30"),
    ("stein", "19.0.0", "2019-04-10"),
    ("train", "20.0.0", "2019-10-16"),
    ("ussuri", "21.0.0", "2020-05-13"),
    ("victoria", "22.0.0", "2020-10-14"),
    ("wallaby", "23.0.0", "2021-04-14"),
    ("xena", "24.0.0", "2021-10-06"),
    ("yoga", "25.0.0", "2022-03-30"),
    ("zed", "26.0.0", "2022-10-05"),
    ("2023.1", "27.0.0", "2023-03-22"),
    ("2023.2", "28.0.0", "2023-10-04"),
    ("2024.1", "29.0.0", "2024-04-03"),
    ("2024.2", "30.0.0", "2024-10-02"),
    ("2025.1", "31.0.0", "2025-04-02"),
    ("2025.2", "32.0.0", "2025-10-01"),
]
PREVIOUS_RELEASE_TAG = "32.0.0"  # the release before 2026.1 Gazpacho, the bump's target

HISTORY_START = "2011-09-01"
MAIN_END = "2025-11-14"
BUMP_DATE = "2025-11-20T10:00:00"

# (from date, MIN_LIBVIRT, MIN_QEMU, NEXT_MIN_LIBVIRT, NEXT_MIN_QEMU): roughly Nova's history.
SCHEDULE = [
    ("2011-09-01", (0, 9, 6), (1, 0, 0), None, None),
    ("2015-06-01", (0, 10, 2), (1, 5, 3), (1, 2, 1), (1, 5, 3)),
    ("2016-05-01", (1, 2, 1), (1, 5, 3), (1, 2, 9), (2, 1, 0)),
    ("2017-04-01", (1, 2, 9), (2, 1, 0), (1, 3, 1), (2, 5, 0)),
    ("2018-04-01", (1, 3, 1), (2, 5, 0), (3, 0, 0), (2, 8, 0)),
    ("2019-05-01", (3, 0, 0), (2, 8, 0), (4, 0, 0), (2, 11, 0)),
    ("2020-06-01", (4, 0, 0), (2, 11, 0), (5, 0, 0), (4, 0, 0)),
    ("2021-05-01", (5, 0, 0), (4, 0, 0), (6, 0, 0), (4, 2, 0)),
    ("2022-05-01", (6, 0, 0), (4, 2, 0), (7, 0, 0), (5, 2, 0)),
    ("2023-05-01", (7, 0, 0), (5, 2, 0), (8, 0, 0), (6, 2, 0)),
]
BUMPED = ((8, 0, 0), (6, 2, 0))

DRIVER_LINES = 14_000
DRIVER_EDIT_EVERY = 400

PACKAGES = [
    "api/openstack/compute", "api/openstack/compute/schemas", "api/validation", "api/metadata",
    "cmd", "compute", "compute/monitors", "conductor", "conductor/tasks", "conf", "console",
    "db/main", "db/api", "db/main/migrations/versions", "image", "keymgr", "limit", "network",
    "notifications/objects", "objects", "pci", "policies", "scheduler", "scheduler/filters",
    "scheduler/weights", "scheduler/client", "servicegroup", "storage", "virt", "virt/disk",
    "virt/disk/mount", "virt/hyperv", "virt/ironic", "virt/vmwareapi", "virt/zvm",
    "virt/powervm", "virt/image", "volume", "accelerator", "cells",
]
LIBVIRT_MODULES = [
    "__init__", "blockinfo", "config", "designer", "driver", "event", "guest", "host",
    "imagebackend", "imagecache", "instancejobtracker", "migration", "utils", "vif",
    "machine_type_utils", "cpu_api",
]
WORDS = [
    "instance", "flavor", "server", "volume", "snapshot", "image", "network", "port", "host",
    "aggregate", "quota", "keypair", "migration", "service", "hypervisor", "allocation",
    "resource", "provider", "cell", "request", "spec", "numa", "topology", "pci", "device",
    "console", "metadata", "block", "attachment", "evacuate", "rescue", "resize", "shelve",
    "lock", "pause", "suspend", "rebuild", "backup", "tag", "group", "policy", "limit", "usage",
    "event", "action", "fault", "share", "vtpm", "mdev", "vgpu", "cpu", "memory", "disk",
]
AUTHORS = [f"{a} {b}" for a in ("Alex", "Sam", "Kim", "Lee", "Ana", "Jo", "Ravi", "Mei")
           for b in ("Stone", "Park", "Novak", "Silva", "Okafor", "Berg")]

DRIVER_HEADER = '''# Copyright 2010 United States Government as represented by the
# Administrator of the National Aeronautics and Space Administration.
# All Rights Reserved.
# Copyright (c) 2010 Citrix Systems, Inc.
# Copyright (c) 2011 Piston Cloud Computing, Inc
# Copyright (c) 2012 University Of Minho
# (c) Copyright 2013 Hewlett-Packard Development Company, L.P.
#
#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.

"""
A connection to a hypervisor through libvirt.

Supports KVM, LXC, QEMU, and Parallels.
"""

import binascii
import collections
from collections import deque
import contextlib
import copy
import errno
import functools
import glob
import grp
import itertools
import operator
import os
import pwd
import random
import shutil
import sys
import tempfile
import threading
import time
import typing as ty
import uuid

from castellan import key_manager
from copy import deepcopy
from eventlet import greenthread
from eventlet import tpool
from lxml import etree
from os_brick import encryptors
from os_brick.encryptors import luks as luks_encryptor
from os_brick import exception as brick_exception
from os_brick.initiator import connector
import os_resource_classes as orc
import os_traits as ot
from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_serialization import base64
from oslo_serialization import jsonutils
from oslo_service import loopingcall
from oslo_utils import encodeutils
from oslo_utils import excutils
from oslo_utils import fileutils
from oslo_utils import importutils
from oslo_utils import netutils as oslo_netutils
from oslo_utils import strutils
from oslo_utils import timeutils
from oslo_utils import units
from oslo_utils import uuidutils

from nova.api.metadata import base as instance_metadata
from nova.api.metadata import password
from nova import block_device
from nova.compute import power_state
from nova.compute import provider_tree
from nova.compute import task_states
from nova.compute import utils as compute_utils
from nova.compute import vm_states
import nova.conf
from nova.console import serial as serial_console
from nova.console import type as ctype
from nova import context as nova_context
from nova import crypto
from nova.db import constants as db_const
from nova import exception
from nova.i18n import _
from nova.image import glance
from nova.network import model as network_model
from nova.network import neutron
from nova import objects
from nova.objects import diagnostics as diagnostics_obj
from nova.objects import fields
from nova.objects import migrate_data as migrate_data_obj
from nova.pci import utils as pci_utils
from nova.pci import whitelist
import nova.privsep.libvirt
import nova.privsep.path
import nova.privsep.utils
from nova.storage import rbd_utils
from nova import utils
from nova import version
from nova.virt import block_device as driver_block_device
from nova.virt import configdrive
from nova.virt.disk import api as disk_api
from nova.virt.disk.vfs import guestfs
from nova.virt import driver
from nova.virt import event as virtevent
from nova.virt import hardware
from nova.virt.image import model as imgmodel
from nova.virt import images
from nova.virt.libvirt import blockinfo
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import designer
from nova.virt.libvirt import event as libvirtevent
from nova.virt.libvirt import guest as libvirt_guest
from nova.virt.libvirt import host
from nova.virt.libvirt import imagebackend
from nova.virt.libvirt import imagecache
from nova.virt.libvirt import instancejobtracker
from nova.virt.libvirt import migration as libvirt_migrate
from nova.virt.libvirt.storage import dmcrypt
from nova.virt.libvirt.storage import lvm
from nova.virt.libvirt import utils as libvirt_utils
from nova.virt.libvirt import vif as libvirt_vif
from nova.virt.libvirt.volume import fs
from nova.virt.libvirt.volume import mount
from nova.virt.libvirt.volume import remotefs
from nova.virt import netutils
from nova.volume import cinder

libvirt: ty.Any = None

uefi_logged = False

LOG = logging.getLogger(__name__)

CONF = nova.conf.CONF

MAX_CONSOLE_BYTES = 100 * units.Ki
VALID_DISK_CACHEMODES = [
    "default", "none", "writethrough", "writeback", "directsync", "unsafe",
]

# The libvirt driver will prefix any disable reason codes with this string.
DISABLE_PREFIX = 'AUTO: '
# Disable reason for the service which was enabled or disabled without reason
DISABLE_REASON_UNDEFINED = None

# Guest config console string
CONSOLE = "console=tty0 console=ttyS0 console=hvc0"

GuestNumaConfig = collections.namedtuple(
    'GuestNumaConfig', ['cpuset', 'cputune', 'numaconfig', 'numatune'])

'''

# The real feature minimums (beside the four version constants); the rest are fillers.
REAL_FEATURES = [
    ("MIN_LIBVIRT_VTPM", (5, 6, 0)),
    ("MIN_QEMU_VTPM", (2, 11, 0)),
    ("MIN_LIBVIRT_VDPA", (6, 9, 0)),
    ("MIN_QEMU_VDPA", (5, 1, 0)),
    ("MIN_LIBVIRT_MDEV_LIVE_MIGRATION", (8, 6, 0)),
]

METHOD_TEMPLATES = [
    '''    def _{verb}_{noun}_{i}(self, context, instance, {noun}=None):
        """{Verb} the {noun} of an instance (step {i})."""
        if {noun} is None:
            {noun} = instance.get('{noun}')
        guest = self._host.get_guest(instance)
        LOG.debug('{verb} %(name)s for %(uuid)s',
                  {{'name': '{noun}', 'uuid': instance.uuid}},
                  instance=instance)
        try:
            result = guest.get_xml_desc(dump_sensitive=False)
        except libvirt.libvirtError as ex:
            error_code = ex.get_error_code()
            if error_code == libvirt.VIR_ERR_NO_DOMAIN:
                raise exception.InstanceNotFound(instance_id=instance.uuid)
            raise
        return self._parse_{noun}(result, {noun})

''',
    '''    def _get_{noun}_{verb}_{i}(self, flavor, image_meta):
        """Return the {noun} settings asked for by the flavor or the image."""
        extra_specs = flavor.extra_specs or {{}}
        value = extra_specs.get('hw:{noun}_{verb}')
        if value is None:
            value = image_meta.properties.get('hw_{noun}_{verb}')
        if value is not None and not strutils.is_valid_boolstr(value):
            raise exception.Invalid(_('Invalid {noun} {verb}: %s') % value)
        return strutils.bool_from_string(value)

''',
    '''    @staticmethod
    def _{verb}_{noun}_config_{i}(conf, {noun}_info):
        for key in sorted({noun}_info):
            item = vconfig.LibvirtConfigGuest{Noun}()
            item.name = key
            item.value = {noun}_info[key]
            if item.value in (None, ''):
                continue
            conf.add_device(item)
        return conf

''',
]


def iso(day: str, hour: int = 12) -> int:
    """Epoch seconds of a UTC date (YYYY-MM-DD) at ``hour``."""
    d = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    return int(d.timestamp()) + hour * 3600 if len(day) == 10 else int(d.timestamp())


def fmt_version(v: tuple[int, int, int]) -> str:
    return "({:d}, {:d}, {:d})".format(*v)


class DriverModel:
    """Builds driver.py text quickly: a fixed body, a constants block that varies."""

    def __init__(self, watched: int, lines: int = DRIVER_LINES) -> None:
        if watched < 4:
            raise SystemExit("--watched must be at least 4")
        self.watched = watched
        rnd = random.Random(7)
        n_features = watched - 4 - 1  # minus the four version constants and OTHER_ARCH
        features = list(REAL_FEATURES[: max(0, n_features)])
        k = 0
        while len(features) < n_features:
            comp = "LIBVIRT" if k % 2 == 0 else "QEMU"
            feat = f"{rnd.choice(WORDS).upper()}_{rnd.choice(WORDS).upper()}_{k:04d}"
            ver = (rnd.randint(1, 9), rnd.randint(0, 10), 0)
            features.append((f"MIN_{comp}_{feat}", ver))
            k += 1
        self.features = features
        self.tail = self._tail()
        fixed = (DRIVER_HEADER.count("\n") + self._constants((1, 0, 0), (1, 0, 0), (1, 0, 0), (1, 0, 0), 0).count("\n")
                 + self.tail.count("\n") + 40)
        self.body_parts = self._body(max(200, lines - fixed), rnd)

    def _constants(self, lv, qv, nlv, nqv, rev: int) -> str:
        out = ["# Minimum libvirt and QEMU versions the driver runs with.\n",
               f"MIN_LIBVIRT_VERSION = {fmt_version(lv)}\n",
               f"MIN_QEMU_VERSION = {fmt_version(qv)}\n"]
        out.append("\n# Libvirt version to warn about: the next release will require it.\n")
        if nlv is not None:
            out.append(f"NEXT_MIN_LIBVIRT_VERSION = {fmt_version(nlv)}\n")
            out.append(f"NEXT_MIN_QEMU_VERSION = {fmt_version(nqv)}\n")
        else:
            out.append(f"NEXT_MIN_LIBVIRT_VERSION = {fmt_version(lv)}\n")
            out.append(f"NEXT_MIN_QEMU_VERSION = {fmt_version(qv)}\n")
        out.append("\n# Minimum versions of optional features.\n")
        for name, ver in self.features:
            out.append(f"{name} = {fmt_version(ver)}\n")
        out.append("\n# Per-architecture minimums.\n")
        out.append("MIN_LIBVIRT_OTHER_ARCH = {\n")
        out.append(f"    fields.Architecture.S390X: {fmt_version(lv)},\n")
        out.append(f"    fields.Architecture.PPC64LE: {fmt_version(lv)},\n")
        out.append("}\n\n")
        out.append(f"# driver revision {rev}\n\n")
        return "".join(out)

    def _tail(self) -> str:
        return '''

def _check_min_version(host):
    """Refuse to start below the minimums; warn below the next minimums."""
    if not host.has_min_version(MIN_LIBVIRT_VERSION):
        raise exception.InternalError(
            _('Nova requires libvirt version %s or greater.') %
            libvirt_utils.version_to_string(MIN_LIBVIRT_VERSION))
    if not host.has_min_version(hv_ver=MIN_QEMU_VERSION):
        raise exception.InternalError(
            _('Nova requires QEMU version %s or greater.') %
            libvirt_utils.version_to_string(MIN_QEMU_VERSION))
    if not host.has_min_version(NEXT_MIN_LIBVIRT_VERSION):
        LOG.warning('Running Nova with a libvirt version less than '
                    '%(version)s is deprecated. The required minimum '
                    'version of libvirt will be raised to %(version)s '
                    'in the next release.',
                    {'version': libvirt_utils.version_to_string(
                        NEXT_MIN_LIBVIRT_VERSION)})
    if not host.has_min_version(hv_ver=NEXT_MIN_QEMU_VERSION):
        LOG.warning('Running Nova with a QEMU version less than '
                    '%(version)s is deprecated. The required minimum '
                    'version of QEMU will be raised to %(version)s '
                    'in the next release.',
                    {'version': libvirt_utils.version_to_string(
                        NEXT_MIN_QEMU_VERSION)})
'''

    def _body(self, lines: int, rnd: random.Random) -> list[str]:
        parts = ['''

class LibvirtDriver(driver.ComputeDriver):
    """The libvirt compute driver."""

    def __init__(self, virtapi, read_only=False):
        super(LibvirtDriver, self).__init__(virtapi)
        global libvirt
        if libvirt is None:
            libvirt = importutils.import_module('libvirt')
            libvirt_migrate.libvirt = libvirt
        self._host = host.Host(self._uri(), read_only,
                               lifecycle_event_handler=self.emit_event,
                               conn_event_handler=self._handle_conn_event)
        self._supported_perf_events = []
        self.vif_driver = libvirt_vif.LibvirtGenericVIFDriver(self._host)

    def init_host(self, host):
        self._host.initialize()
        _check_min_version(self._host)
        self._check_vtpm_support()

    def _check_vtpm_support(self) -> None:
        if not CONF.libvirt.swtpm_enabled:
            return
        if not self._host.has_min_version(lv_ver=MIN_LIBVIRT_VTPM,
                                          hv_ver=MIN_QEMU_VTPM):
            raise exception.InvalidConfiguration(
                _('vTPM support requires libvirt %s and QEMU %s.') % (
                    libvirt_utils.version_to_string(MIN_LIBVIRT_VTPM),
                    libvirt_utils.version_to_string(MIN_QEMU_VTPM)))

''']
        count = parts[0].count("\n")
        i = 0
        while count < lines:
            tpl = METHOD_TEMPLATES[i % len(METHOD_TEMPLATES)]
            verb, noun = rnd.choice(WORDS), rnd.choice(WORDS)
            text = tpl.format(verb=verb, Verb=verb.capitalize(), noun=noun,
                              Noun=noun.capitalize(), i=i)
            parts.append(text)
            count += text.count("\n")
            i += 1
        return parts

    def text(self, lv, qv, nlv, nqv, rev: int) -> bytes:
        return (DRIVER_HEADER + self._constants(lv, qv, nlv, nqv, rev)
                + "".join(self.body_parts) + self.tail).encode()


def make_paths(rnd: random.Random, n_paths: int) -> list[str]:
    """A few thousand small-file paths across nova/ (code, unit and functional tests)."""
    paths: list[str] = [f"nova/virt/libvirt/{m}.py" for m in LIBVIRT_MODULES if m != "driver"]
    paths += [f"nova/virt/libvirt/volume/{w}.py" for w in ("iscsi", "nfs", "fs", "mount", "remotefs", "rbd")]
    seen = set(paths)
    while len(paths) < n_paths:
        pkg = rnd.choice(PACKAGES)
        name = f"{rnd.choice(WORDS)}_{rnd.choice(WORDS)}"
        kind = rnd.random()
        if kind < 0.45:
            p = f"nova/{pkg}/{name}.py"
        elif kind < 0.85:
            p = f"nova/tests/unit/{pkg}/test_{name}.py"
        elif kind < 0.95:
            p = f"nova/tests/functional/{pkg.split('/')[0]}/test_{name}.py"
        else:
            p = f"releasenotes/notes/{name}-{rnd.randrange(16**8):08x}.yaml"
        if p not in seen:
            seen.add(p)
            paths.append(p)
    return paths


def small_file(path: str, rev: int) -> bytes:
    mod = path.rsplit("/", 1)[-1].split(".")[0]
    if path.endswith(".yaml"):
        return (f"---\nfixes:\n  - |\n    Fixed a problem in ``{mod}`` (change {rev}).\n").encode()
    return (f'''# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License.

"""Helpers for {mod}."""

from oslo_log import log as logging

LOG = logging.getLogger(__name__)


def {mod}_helper(context, value=None):
    LOG.debug("{mod} helper called with %s", value)
    if value is None:
        return []
    return [value]


REVISION = {rev}
''').encode()


STATIC_FILES = {
    "README.rst": b"OpenStack Nova (benchmark fixture made by minbump's bench/make_repo.py)\n",
    "setup.cfg": b"[metadata]\nname = nova\nsummary = Cloud computing fabric controller\n",
    "requirements.txt": b"pbr>=5.8.0\nSQLAlchemy>=1.4.13\nlibvirt-python>=6.0.0\noslo.log>=4.6.1\n",
    "tox.ini": b"[tox]\nminversion = 3.18.0\nenvlist = py3,functional,pep8\n",
    "nova/__init__.py": b"",
    "nova/virt/__init__.py": b"",
    CONFIG: b"# minbump configuration\npreset: openstack-nova\n",
}


def tag_plan(n_tags: int) -> tuple[list[tuple[str, int, str]], list[tuple[str, str, str, int]]]:
    """(name, epoch, message) tags on main, and (branch, name, message, epoch) point releases."""
    main: list[tuple[str, int, str]] = []
    for series, tag, day in RELEASES:
        t = iso(day)
        week = 7 * 86400
        if "." in tag and tag.split(".")[0].startswith("20"):  # 2012.1 .. 2015.1.0
            base = tag if tag.count(".") == 1 else tag.rsplit(".", 1)[0]
            pre = [(f"{base}.b1", t - 20 * week), (f"{base}.b2", t - 13 * week), (f"{base}.b3", t - 6 * week),
                   (f"{base}.rc1", t - 3 * week), (f"{base}.rc2", t - 1 * week)]
        else:
            pre = [(f"{tag}.0b1", t - 20 * week), (f"{tag}.0b2", t - 13 * week), (f"{tag}.0b3", t - 6 * week),
                   (f"{tag}.0rc1", t - 3 * week), (f"{tag}.0rc2", t - 1 * week)]
        for name, when in pre:
            main.append((name, when, f"nova {name} milestone"))
        main.append((tag, t, f"nova {tag} ({series}) release"))
    stable: list[tuple[str, str, str, int]] = []
    remaining = max(0, n_tags - len(main))
    k = 0
    while remaining > 0 and RELEASES:
        for series, tag, day in RELEASES:
            if remaining <= 0:
                break
            parts = tag.split(".")
            if len(parts) == 2:  # 2013.1 -> 2013.1.N
                name = f"{tag}.{k + 1}"
            else:
                name = f"{parts[0]}.{parts[1]}.{int(parts[2]) + k + 1}"
            when = iso(day) + (k + 1) * 6 * 7 * 86400
            stable.append((f"stable/{series}", name, f"nova {name} ({series}) point release", when))
            remaining -= 1
        k += 1
    if n_tags < len(main):
        main = [m for m in main if not any(c in m[0] for c in ("b", "rc"))] + \
               [m for m in main if any(c in m[0] for c in ("b", "rc"))]
        main = sorted(main[:n_tags], key=lambda m: m[1])
    main.sort(key=lambda m: m[1])
    return main, stable


def schedule_at(t: int):
    cur = SCHEDULE[0]
    for row in SCHEDULE:
        if iso(row[0]) <= t:
            cur = row
    return cur[1:]


def build(out: Path, commits: int, watched: int, n_tags: int, n_paths: int, seed: int = 1) -> dict:
    started = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    env = dict(os.environ)
    for k in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(k, None)
    subprocess.run(["git", "init", "-q", "-b", "main", str(out)], check=True, env=env)
    proc = subprocess.Popen(["git", "fast-import", "--quiet", "--done"], cwd=out, env=env,
                            stdin=subprocess.PIPE, bufsize=1 << 20)
    assert proc.stdin is not None
    w = proc.stdin.write

    rnd = random.Random(seed)
    model = DriverModel(watched)
    paths = make_paths(rnd, n_paths)
    mark = 0

    def blob(data: bytes) -> int:
        nonlocal mark
        mark += 1
        w(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(data), data))
        return mark

    def commit(ref: str, when: int, message: str, files: dict[str, int], parent: int | None,
               author: str) -> int:
        nonlocal mark
        mark += 1
        email = author.lower().replace(" ", ".") + "@example.org"
        msg = message.encode()
        head = b"commit %s\nmark :%d\nauthor %s <%s> %d +0000\ncommitter %s <%s> %d +0000\ndata %d\n%s\n" % (
            ref.encode(), mark, author.encode(), email.encode(), when, author.encode(), email.encode(), when,
            len(msg), msg)
        body = [head]
        if parent is not None:
            body.append(b"from :%d\n" % parent)
        for p, m in files.items():
            body.append(b"M 100644 :%d %s\n" % (m, p.encode()))
        body.append(b"\n")
        w(b"".join(body))
        return mark

    main_tags, stable_tags = tag_plan(n_tags)
    t0, t1 = iso(HISTORY_START), iso(MAIN_END)
    span = t1 - t0

    # Initial commit: every path, the driver and the config.
    state = schedule_at(t0)
    driver_rev = 0
    files = {p: blob(small_file(p, 0)) for p in paths}
    for p, data in STATIC_FILES.items():
        files[p] = blob(data)
    files[DRIVER] = blob(model.text(*state, driver_rev))
    parent = commit("refs/heads/main", t0, "Initial import\n", files, None, AUTHORS[0])
    commit_marks_by_tag: dict[str, int] = {}
    tag_i = 0
    driver_commits = 1
    n_main = max(1, commits)
    for i in range(1, n_main):
        when = t0 + span * i // n_main
        while tag_i < len(main_tags) and main_tags[tag_i][1] < when:
            commit_marks_by_tag[main_tags[tag_i][0]] = parent
            tag_i += 1
        new_state = schedule_at(when)
        files = {}
        touch_driver = new_state != state or rnd.randrange(DRIVER_EDIT_EVERY) == 0
        if touch_driver:
            state = new_state
            driver_rev += 1
            files[DRIVER] = blob(model.text(*state, driver_rev))
            driver_commits += 1
        for _ in range(rnd.choice((1, 1, 2, 2, 3))):
            p = paths[rnd.randrange(len(paths))]
            files[p] = blob(small_file(p, i))
        topic = rnd.choice(WORDS)
        msg = f"Fix {topic} handling in {rnd.choice(PACKAGES)}\n\nChange-Id: I{i:040x}\n"
        parent = commit("refs/heads/main", when, msg, files, parent, AUTHORS[i % len(AUTHORS)])
    while tag_i < len(main_tags):
        commit_marks_by_tag[main_tags[tag_i][0]] = parent
        tag_i += 1
    main_tip = parent

    def tag(name: str, target: int, when: int, message: str) -> None:
        msg = (message + "\n").encode()
        w(b"tag %s\nfrom :%d\ntagger OpenStack Release Bot <infra-root@example.org> %d +0000\ndata %d\n%s\n"
          % (name.encode(), target, when, len(msg), msg))

    for name, when, message in main_tags:
        tag(name, commit_marks_by_tag[name], when, message)

    # Point releases on stable branches, branched at the series tag.
    branch_tip: dict[str, int] = {}
    release_tag_of = {f"stable/{s}": t for s, t, _ in RELEASES}
    for j, (branch, name, message, when) in enumerate(sorted(stable_tags, key=lambda s: s[3])):
        start = branch_tip.get(branch, commit_marks_by_tag.get(release_tag_of[branch], main_tip))
        p = paths[rnd.randrange(len(paths))]
        fm = {p: blob(small_file(p, 10_000_000 + j))}
        cm = commit(f"refs/heads/{branch}", when - 86400, f"Backport fix to {p}\n\nChange-Id: Is{j:039x}\n",
                    fm, start, AUTHORS[j % len(AUTHORS)])
        branch_tip[branch] = cm
        tag(name, cm, when, message)

    # The bump branch: raise the minimums to the announced NEXT_MIN_* values.
    lv_next, qv_next = state[2], state[3]
    bump_files = {
        DRIVER: blob(model.text(BUMPED[0], BUMPED[1], lv_next, qv_next, driver_rev + 1)),
        "releasenotes/notes/bump-min-libvirt-qemu-gazpacho-0123abcd.yaml": blob(
            b"---\nupgrade:\n  - |\n    The minimum libvirt is now 8.0.0 and the minimum QEMU 6.2.0.\n"),
    }
    bump_when = iso(BUMP_DATE)
    commit("refs/heads/bump", bump_when,
           "libvirt: Bump MIN_{LIBVIRT,QEMU}_VERSION for 2026.1 Gazpacho\n\n"
           "Bump the minimum libvirt to 8.0.0 and QEMU to 6.2.0, as warned in 2025.2.\n\n"
           "Change-Id: I0123456789abcdef0123456789abcdef01234567\n",
           bump_files, main_tip, AUTHORS[1])
    w(b"done\n")
    proc.stdin.close()
    rc = proc.wait()
    if rc != 0:
        raise SystemExit(f"git fast-import failed with exit code {rc}")
    subprocess.run(["git", "pack-refs", "--all"], cwd=out, check=True, env=env)
    # A work tree is not needed by minbump (it reads objects only); leave HEAD on main.
    elapsed = time.perf_counter() - started
    watched_paths = sorted(p for p in list(paths) + [DRIVER]
                           if p.startswith(WATCH_GLOB_DIR) and p.endswith(".py")
                           and "/" not in p[len(WATCH_GLOB_DIR):])
    meta = {
        "generator_version": GENERATOR_VERSION,
        "commits_main": n_main,
        "commits_total": n_main + 1 + len(stable_tags),
        "driver_commits": driver_commits,
        "watched_constants": watched,
        "tags": len(main_tags) + len(stable_tags),
        "paths": len(paths) + len(STATIC_FILES) + 1,
        "driver_lines": model.text(*state, driver_rev).count(b"\n"),
        "base": "main",
        "head": "bump",
        "previous_release_tag": PREVIOUS_RELEASE_TAG,
        "watched_paths": watched_paths,
        "config_path": CONFIG,
        "build_seconds": round(elapsed, 2),
    }
    (out / ".git" / "minbump-bench.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def read_meta(repo: Path) -> dict | None:
    try:
        return json.loads((repo / ".git" / "minbump-bench.json").read_text())
    except (OSError, ValueError):
        return None


def ensure_repo(repo: Path, commits: int, watched: int = 10, tags: int = 300, paths: int = 3000,
                quiet: bool = False) -> dict:
    """Reuse ``repo`` if it was built with these parameters by this generator version, else build it."""
    meta = read_meta(repo)
    if (meta and meta.get("generator_version") == GENERATOR_VERSION and meta.get("commits_main") == commits
            and meta.get("watched_constants") == watched and meta.get("tags") == tags):
        return meta
    if not quiet:
        print(f"building fixture {repo.name}: {commits} commits, {watched} watched constants ...",
              file=sys.stderr, flush=True)
    return build(repo, commits, watched, tags, paths)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="directory to create (replaced if it exists)")
    ap.add_argument("--commits", type=int, default=60_000, help="commits on main (default 60000)")
    ap.add_argument("--watched", type=int, default=10, help="MIN_* constants in driver.py (default 10)")
    ap.add_argument("--tags", type=int, default=300, help="annotated tags (default 300)")
    ap.add_argument("--paths", type=int, default=3000, help="small files besides driver.py (default 3000)")
    args = ap.parse_args(argv)
    meta = build(args.out, args.commits, args.watched, args.tags, args.paths)
    print(json.dumps({k: v for k, v in meta.items() if k != "watched_paths"}))
    print(f"built {args.out} in {meta['build_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
