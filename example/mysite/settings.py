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

# wsviews: the realtime hub (mounted in mysite/urls.py), configured with Centrifugo's
# option names. The /hub-chat/<room>/ page connects with a token its view signs with
# this key; "room" channels keep the last 100 messages for 5 minutes (recovery after a
# reconnect, history on join), with presence and join/leave; "typing" channels carry
# the typing indicator and keep nothing.
_hub_everyone = {
    'allow_subscribe_for_client': True, 'allow_subscribe_for_anonymous': True,
    'allow_publish_for_subscriber': True, 'allow_publish_for_anonymous': True,
}
WSVIEWS_HUB = {
    'client': {
        'token': {'hmac_secret_key': os.environ.get('HUB_TOKEN_SECRET', SECRET_KEY)},
    },
    'channel': {
        'namespaces': [
            {
                'name': 'room', **_hub_everyone,
                'history_size': 100, 'history_ttl': '300s', 'force_recovery': True,
                'presence': True, 'join_leave': True, 'force_push_join_leave': True,
                'allow_presence_for_subscriber': True, 'allow_presence_for_anonymous': True,
                'allow_history_for_subscriber': True, 'allow_history_for_anonymous': True,
            },
            {'name': 'typing', **_hub_everyone},
        ],
    },
}

# With WSVIEWS_REDIS_URL set, wsviews' own Redis layer is the default layer instead: the
# hub then keeps history and presence in Redis, so several servers share one chat and a
# restarted server's clients recover what they missed. (The tutorial's channels_redis
# layer carries @websocket views and consumers across processes, but not the hub.)
_wsviews_redis = os.environ.get('WSVIEWS_REDIS_URL')
if _wsviews_redis:
    CHANNEL_LAYERS = {
        'default': {
            'BACKEND': 'wsviews.layers.RedisChannelLayer',
            'CONFIG': {
                'hosts': [_wsviews_redis],
                'prefix': os.environ.get('WSVIEWS_REDIS_PREFIX', 'wsviews-example'),
            },
        },
    }

# centrifuge-js, the hub's browser client, comes from npm like htmx and Turbo.
STATICFILES_DIRS += [('centrifuge', NODE_MODULES / 'centrifuge' / 'dist')]
