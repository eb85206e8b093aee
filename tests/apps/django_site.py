"""A one-module Django site whose ``LOGGING`` is the documented example's."""

import logging

import django_settings  # docs/examples/django_settings.py
from django.http import HttpResponse
from django.urls import path

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1"]
ROOT_URLCONF = __name__
INSTALLED_APPS: list = []
MIDDLEWARE: list = []
USE_TZ = True
LOGGING = django_settings.LOGGING

logger = logging.getLogger("myapp")


def order(request, number):
    if number == 13:
        raise RuntimeError("unlucky order")  # Django logs it on django.request
    logger.warning("order %s is late", number)
    return HttpResponse("ok")


urlpatterns = [path("orders/<int:number>", order)]
