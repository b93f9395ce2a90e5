// Spanish for chatdesk.js, which loads this file for data-locale="es" (or a page or browser in
// Spanish): one line a string, in the order of its KEYS.
document.currentScript.strings = `Chatea con nosotros
Abrir el chat
Cerrar el chat
Mensajes anteriores
¡Hola! ¿En qué podemos ayudarte?
Conversación
La conversación se eliminó.
Este chat se cerró. Escribe para reabrirlo.
Soporte está escribiendo…
Mensaje
Escribe un mensaje…
Enviar
Adjuntar archivos
¿Empezar una conversación nueva? Esta se ocultará.
Cancelar
Conversación nueva
¿Eliminar para siempre esta conversación y sus archivos?
Eliminar
Más
Descargar la transcripción
Eliminar la conversación
Nombre
Correo
Para responderte si te vas (opcional):
No, gracias
Guardar
Ahora no estamos; responderemos pronto.
No se pudo conectar con el servidor de chat.
Archivos de hasta {0}.
Hasta {0} archivos por mensaje.
Tipos de archivo permitidos: {0}.
El archivo está vacío.
Hasta {0} caracteres por mensaje.
Analizando…
Enviando…
Enviado
Leído
No enviado
Aún no enviado: saldrá cuando vuelva la conexión.
Este chat terminó. Reintenta para empezar uno nuevo.
La descarga falló. Inténtalo de nuevo en un momento.
Este enlace ya se usó o ha caducado.
Abrir el chat, {0} sin leer
Soporte
Reintentar
Quitar
Archivo caducado
Descargar
Enviar sin archivos
Editar
Imagen anterior
Imagen siguiente
Cerrar
Chat cerrado
Chat reabierto
Marcado como pendiente`;
