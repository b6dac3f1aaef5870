# myapp/consumers.py

from channels.generic.websocket import AsyncWebsocketConsumer

class MyConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        # Perform any setup tasks when a new websocket connection is established
        await self.accept()

    async def disconnect(self, close_code):
        # Perform any clean-up tasks when a websocket connection is closed
        pass

    async def receive(self, text_data):
        # Process incoming message from the client
        await self.send(text_data=text_data)
