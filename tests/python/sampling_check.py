#!/usr/bin/env python3
"""Fetches sampling strategies from an agent's HTTP port the way the Jaeger Python client
does (`GET /sampling?service=NAME`) and feeds each answer to the client's own
RemoteControlledSampler; prints, per service, the sampler the client ends up with.

usage: sampling_check.py SAMPLING_PORT SERVICE...
"""
import json
import logging
import sys
import urllib.parse
import urllib.request

from jaeger_client.sampler import RemoteControlledSampler


class NoChannel(object):
    # No IOLoop: the sampler is updated by hand below, never polled.
    io_loop = None


class Raise(object):
    def error(self, msg, *args):
        raise AssertionError(msg % args)


def main():
    logging.disable(logging.CRITICAL)
    port, services = int(sys.argv[1]), sys.argv[2:]
    out = {}
    for service in services:
        query = urllib.parse.urlencode({"service": service})
        with urllib.request.urlopen("http://127.0.0.1:%d/sampling?%s" % (port, query), timeout=10) as resp:
            body = json.loads(resp.read())
        sampler = RemoteControlledSampler(NoChannel(), service, error_reporter=Raise())
        sampler._update_sampler(body)
        out[service] = str(sampler.sampler)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
