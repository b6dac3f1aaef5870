"""
Django settings for mysite project: the tutorial's settings, plus "wsviews".

The INSTALLED_APPS additions and CHANNEL_LAYERS below are the tutorial's lines,
as written; "wsviews" comes first so its runserver serves websockets too.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get('DJANGO_SECRET_KEY', 'django-insecure-wsviews-example-key-change-me')
DEBUG = os.environ.get('DJANGO_DEBUG', '1') == '1'
ALLOWED_HOSTS = ['localhost', '127.0.0.1', '[::1]']

INSTALLED_APPS = [
    'wsviews',
    'django.contrib.admin',
    'django.contrib.auth',
    'django.contrib.contenttypes',
    'django.contrib.sessions',
    'django.contrib.messages',
    'django.contrib.staticfiles',
    'channels',
    'myapp',
]

CHANNEL_LAYERS = {
    'default': {
        'BACKEND': 'channels_redis.core.RedisChannelLayer',
        'CONFIG': {
            'hosts': [('localhost', 6379)],
        },
    },
}

# With REDIS_URL set, the tutorial's Redis layer is used (pointed at that URL);
# without it the example runs in one process on wsviews' in-memory layer.
REDIS_URL = os.environ.get('REDIS_URL')
if not REDIS_URL:
    CHANNEL_LAYERS = {'default': {'BACKEND': 'wsviews.layers.InMemoryChannelLayer'}}
elif REDIS_URL.rstrip('/') not in ('redis://localhost:6379', 'redis://localhost:6379/0'):
    CHANNEL_LAYERS['default']['CONFIG']['hosts'] = [REDIS_URL]

MIDDLEWARE = [
    'django.middleware.security.SecurityMiddleware',
    'django.contrib.sessions.middleware.SessionMiddleware',
    'django.middleware.common.CommonMiddleware',
    'django.middleware.csrf.CsrfViewMiddleware',
    'django.contrib.auth.middleware.AuthenticationMiddleware',
    'django.contrib.messages.middleware.MessageMiddleware',
    'django.middleware.clickjacking.XFrameOptionsMiddleware',
]

ROOT_URLCONF = 'mysite.urls'

TEMPLATES = [
    {
        'BACKEND': 'django.template.backends.django.DjangoTemplates',
        'DIRS': [],
        'APP_DIRS': True,
        'OPTIONS': {
            'context_processors': [
                'django.template.context_processors.request',
                'django.contrib.auth.context_processors.auth',
                'django.contrib.messages.context_processors.messages',
            ],
        },
    },
]

WSGI_APPLICATION = 'mysite.wsgi.application'
ASGI_APPLICATION = 'mysite.asgi.application'

DATABASES = {
    'default': {
        'ENGINE': 'django.db.backends.sqlite3',
        'NAME': os.environ.get('DJANGO_DB', BASE_DIR / 'db.sqlite3'),
    }
}

AUTH_PASSWORD_VALIDATORS = []

LANGUAGE_CODE = 'en-us'
TIME_ZONE = 'UTC'
USE_I18N = True
USE_TZ = True

STATIC_URL = 'static/'
DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'

# wsviews: htmx, its websocket extension and Turbo come from npm (scripts/demo
# runs `npm install` at the repository root) and are served from node_modules.
NODE_MODULES = BASE_DIR.parent / 'node_modules'
STATICFILES_DIRS = [
    ('htmx', NODE_MODULES / 'htmx.org' / 'dist'),
    ('htmx-ext-ws', NODE_MODULES / 'htmx-ext-ws' / 'dist'),
    ('turbo', NODE_MODULES / '@hotwired' / 'turbo' / 'dist'),
]
