// Portuguese for chatdesk.js, which loads this file for data-locale="pt" (or a page or browser in
// Portuguese): one line a string, in the order of its KEYS.
document.currentScript.strings = `Fale conosco
Abrir o chat
Fechar o chat
Mensagens anteriores
Olá! Como podemos ajudar?
Conversa
A conversa foi excluída.
Este chat foi encerrado. Escreva para reabri-lo.
O suporte está digitando…
Mensagem
Escreva uma mensagem…
Enviar
Anexar arquivos
Começar uma nova conversa? Esta será ocultada.
Cancelar
Nova conversa
Excluir para sempre esta conversa e seus arquivos?
Excluir
Mais
Baixar a transcrição
Excluir a conversa
Nome
E-mail
Para respondermos se você sair (opcional):
Não, obrigado
Salvar
Estamos ausentes e responderemos em breve.
Não foi possível conectar ao servidor de chat.
Arquivos de até {0}.
Até {0} arquivos por mensagem.
Tipos de arquivo permitidos: {0}.
O arquivo está vazio.
Até {0} caracteres por mensagem.
Verificando…
Enviando…
Enviada
Lida
Não enviada
Ainda não enviada: sai quando a conexão voltar.
Este chat terminou. Tente de novo para começar outro.
O download falhou. Tente de novo em instantes.
Este link já foi usado ou expirou.
Abrir o chat, {0} não lida(s)
Suporte
Tentar de novo
Remover
Arquivo expirado
Baixar
Enviar sem arquivos
Editar
Imagem anterior
Próxima imagem
Fechar
Chat encerrado
Chat reaberto
Marcado como pendente`;
